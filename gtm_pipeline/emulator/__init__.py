"""A local Salesforce API: the generated org, describe, SOQL and writes, served over HTTPS.

Salesforce's limits, as the emulator enforces them (each module says more):
    - SOQL statements: at most 100,000 characters; longer is 400 MALFORMED_QUERY "SOQL statements
      can not be longer than 100000 characters." (`soql_syntax.MAX_SOQL_LENGTH`).
    - Request heads, before any route: a URI (path and query string as sent) over 16,384 bytes
      is 414 URI Too Long; URI and headers together over 16,384 bytes are 431 Request Header
      Fields Too Large; both with Salesforce's front-end HTML page, not a JSON array
      (`head_limits`). A `WHERE Id IN (...)` sent by GET must therefore be chunked: each Id
      costs 27 bytes URL-encoded by `requests`, so 600 Ids sent that way do not fit in one.
    - Query pages: batchSize 200..2000 (default 2000), never promised; at most 10 open cursors,
      each living 2 days (`paging`). sObject Collections: 200 records a request (`org`).
    - Bulk API 2.0 result sets: `maxRecords` rows each (default 50,000), by locator (`bulk`).

Latency (`latency`): by default the emulator answers as fast as loopback allows. The
`realistic` profile (`gtm-pipeline emulator --latency-profile realistic`, or the control API's
/__emulator/latency with chosen numbers) holds each data API response back 100 ms plus 0.6 ms per
KB of JSON or 0.05 ms per KB of CSV, and runs a Bulk job for 10 s + 2 s per 100,000 rows: a
2,000-record page then takes 0.6-1.3 s and a 100,000-row job 12 s, as on real orgs, so benchmarks
measure waiting, not just CPU. Requests are served concurrently: each waits its own delay with
`asyncio.sleep`, holding no lock. OAuth and control calls are never delayed.

Deleted rows are served by queryAll (REST or a Bulk `queryAll` job) with IsDeleted true, never
by query, and so are archived activities (Task and Event with IsArchived true); purged rows by
nothing, not even the control API's truth endpoint, which lists every other record with all its
fields and is the oracle tests compare with.
"""
