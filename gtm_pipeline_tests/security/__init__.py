# ruff: noqa: E501 - the table below names tests in full, one row per line.
"""The attack suite: the connector's whole attack surface, and where each attack is tested.

The tests in this folder add what was missing elsewhere; attacks already covered well by another
folder's tests are not repeated but listed here, so this table is the one place to see them all.
Every attack case run here is counted; the run ends with `ATTACKS: N tried, 0 succeeded`. Every
page the suite fetches is added to the suite-wide secret scan (`secret_scan.record_text`) and
checked on the spot (`ScannedClient`).

| surface | attack | tested in |
| --- | --- | --- |
| OAuth state | every byte of payload and MAC flipped (flow, both databases) | security/test_oauth_state_attacks.py::test_every_byte_of_the_state_flipped_is_refused_and_stores_nothing |
| OAuth state | every character changed, at the web callback | security/test_oauth_state_attacks.py::test_every_character_of_the_state_changed_at_the_web_callback_is_a_400 |
| OAuth state | every truncation, extensions, re-encodings | security/test_oauth_state_attacks.py::test_every_truncation_and_extension_is_refused, salesforce/test_oauth_state.py::test_truncated |
| OAuth state | payload parts edited (tenant, connector, time, nonce) | salesforce/test_oauth_state.py::test_tampered_payload_parts |
| OAuth state | random single and multiple edits (properties) | salesforce/test_oauth_state.py::test_any_single_character_change_is_refused, fuzz/test_state_and_crypto_fuzz.py::test_any_edited_state_is_refused |
| OAuth state | signed with another key, its nonce pending | security/test_oauth_state_attacks.py::test_a_state_signed_with_another_key_is_refused_though_its_nonce_is_pending, connect/test_flow.py::test_a_state_signed_with_another_secret_is_refused |
| OAuth state | non-ASCII, oversized, garbage, missing, parameter twice | web/test_connect_pages.py::test_bad_states_are_400_and_store_nothing, test_a_parameter_given_twice_is_400 |
| OAuth state | expired, from the future | web/test_connect_pages.py::test_expired_state_is_400_and_stores_nothing, connect/test_flow.py::test_an_expired_state_is_refused, salesforce/test_oauth_state.py::test_expired, test_from_the_future |
| OAuth state | replayed after use | web/test_connect_pages.py::test_replayed_callback_is_400_and_changes_nothing, connect/test_flow.py::test_a_replayed_callback_is_refused_and_changes_nothing |
| OAuth state | replayed by 8 browsers at once | security/test_oauth_state_attacks.py::test_concurrent_replays_connect_once |
| OAuth state | cross-tenant: A's state with B's code; A's state reused | security/test_oauth_state_attacks.py::test_a_state_of_one_tenant_with_another_tenants_code_connects_neither |
| OAuth state | cross-tenant: extra tenant parameters on the callback | security/test_oauth_state_attacks.py::test_a_state_issued_for_one_tenant_never_stores_tokens_under_another |
| OAuth binding | a genuine authorize link forwarded to another browser and approved there (Chromium, two contexts, HTTPS, cross-site return) | web/test_browser_forwarded_link.py::test_a_forwarded_authorize_link_is_refused_in_the_victims_browser |
| OAuth binding | forwarded link over HTTP: stranger, another operator with a flow of their own, a forged binding cookie | security/test_oauth_state_attacks.py::test_a_forwarded_authorize_link_connects_nothing |
| OAuth binding | callback without the cookie, with another flow's cookie, with the right cookie but another operator or after logout; refused callback spends the state | web/test_connect_pages.py::test_callback_without_the_binding_cookie_connects_nothing, test_callback_with_another_flows_cookie_connects_nothing, test_callback_with_the_right_cookie_but_another_operators_session_connects_nothing, test_callback_with_the_right_cookie_after_logging_out_connects_nothing, connect/test_flow_binding.py |
| OAuth binding | a GET of the start URL starts nothing | web/test_connect_pages.py::test_a_get_of_the_start_url_starts_nothing |
| sessions | a session cookie copied before logout is refused after it | web/test_login_csrf.py::test_logout_ends_the_session_on_the_server |
| CSRF | every state-changing route of the route table, 12 forgeries each | security/test_csrf_every_route.py::test_every_state_changing_route_refuses_a_missing_or_wrong_csrf_token |
| CSRF | login, logout, disconnect, add tenant, mapping save | web/test_login_csrf.py::test_login_without_or_with_a_wrong_csrf_token_is_403, test_login_then_logout, test_disconnect_and_add_tenant_forms_need_the_csrf_token, web/test_mapping_page.py::test_saving_needs_the_forms_csrf_token |
| CSRF | session fixation (token rotated at login), forged cookies | web/test_units.py::test_session_round_trips_and_login_rotates_the_csrf_token, test_tampered_foreign_and_malformed_cookies_are_no_session, test_expired_and_future_sessions_are_refused |
| SOQL injection | names given to the builder | sync/test_soql.py::test_anything_but_a_plain_identifier_is_refused, test_injections_are_refused_as_field_and_object_names, fuzz/test_soql_fuzz.py::test_the_builder_accepts_only_plain_paths |
| SOQL injection | typed into the mapping page | web/test_mapping_page.py::test_an_invalid_mapping_is_refused_and_nothing_stored, test_a_custom_key_that_is_not_an_identifier_is_refused |
| SOQL injection | in a `mapping set` file | sync/test_mapping_sync.py::test_set_refuses_injection_or_unknown_fields_and_saves_nothing |
| SOQL injection | mapping rows written to the store behind the app's back | security/test_soql_injection.py::test_a_hostile_stored_mapping_stops_the_sync_before_any_call |
| SOQL injection | stored sObject name | security/test_soql_injection.py::test_a_hostile_stored_sobject_name_is_never_used |
| SOQL injection | field, relationship and object names in describe results | security/test_soql_injection.py::test_hostile_names_in_describe_are_shown_escaped_and_refused_when_picked, test_stored_mappings_are_checked_before_each_run_even_when_describe_lists_the_name |
| SOQL injection | sync cursor id and stamp, tenant id | security/test_soql_injection.py::test_a_hostile_cursor_id_never_reaches_the_query, test_a_hostile_cursor_stamp_on_sqlite_is_refused_before_any_query, test_a_hostile_tenant_id_is_data_not_soql_or_sql |
| SOQL injection | any mapping (property): accepted only with plain names | fuzz/test_mapping_fuzz.py::test_accepted_mappings_hold_only_plain_names_and_cannot_change_the_query |
| web input | path traversal (static file, tenant path segments, query) | security/test_web_inputs.py::test_path_traversal_serves_nothing_but_the_apps_pages |
| web input | huge fields, many fields, file uploads | security/test_web_inputs.py::test_oversized_bodies_and_fields_are_refused |
| web input | huge headers, many headers, huge query, cookie, path | security/test_web_inputs.py::test_oversized_heads_are_refused_before_the_app |
| web input | long values in every parameter | security/test_web_inputs.py::test_long_but_legal_values_are_refused_in_plain_words, web/test_units.py::test_tenant_ids_refused_with_a_clear_message |
| web input | the issue's 400 fields of 1 MB, announced by length and streamed chunked | security/test_web_inputs.py::test_the_issues_form_with_its_content_length_is_refused_before_its_body, test_the_issues_form_streamed_without_a_length_is_refused_within_the_limit |
| Host header | a foreign Host on every route; slash redirects | security/test_trusted_host.py |
| token destination | a foreign instance or identity URL in a token answer, a refresh, or stored | salesforce/test_oauth.py::test_a_foreign_instance_or_identity_host_is_refused_naming_the_setting, connect/test_token_destination.py |
| plain http | a non-loopback `web --host`; callback URLs that only look loopback | web/test_commands.py, test_config.py |
| local files | GTM_HOME, the store and Dagster's home readable by others | store/test_engine.py, test_private_files.py |
| writeback | a score mapped onto customer data (standard, formula, compound part, key, low-scale fields) | writeback/test_mapping.py, web/test_writeback_mapping_page.py, defs/test_writeback_mapping_block.py |
| token vault | tenant A's ciphertext under tenant B (client and web page) | security/test_stolen_ciphertext.py::test_tenant_as_ciphertext_under_tenant_b_is_refused_before_any_call, test_the_mapping_page_of_a_tenant_holding_stolen_tokens_refuses_without_leaking |
| token vault | ciphertexts pasted (vault level), connector id changed, verifier as token | connect/test_vault.py::test_a_ciphertext_copied_into_another_tenants_row_does_not_open, test_only_the_refresh_token_swapped_is_caught_too, test_a_changed_connector_id_does_not_open, test_a_verifier_ciphertext_cannot_pose_as_a_token |
| token vault | byte flips, other AAD, edits, splices (properties) | salesforce/test_crypto.py::test_any_single_byte_flip_is_refused, test_any_other_aad_is_refused, fuzz/test_state_and_crypto_fuzz.py::test_any_edited_token_is_refused, test_splices_of_two_tokens_are_refused |
| keys | malformed keys (empty, short, base64, non-hex, ...) | security/test_stolen_ciphertext.py::test_malformed_keys_are_a_clear_error_naming_the_variable_never_the_value, salesforce/test_crypto.py::test_malformed_keys_name_the_variable_never_the_value, connect/test_flow.py::test_from_settings_names_the_bad_variable_never_its_value |
| keys | a wrong, well-formed key | security/test_stolen_ciphertext.py::test_a_wrong_but_well_formed_key_names_key_ids_never_keys, connect/test_vault.py::test_a_different_key_says_which_keys_are_involved |
| operators | a scoped operator on another tenant, every route | security/test_cross_tenant.py::test_a_scoped_operator_reaches_no_other_tenant_on_any_route, web/test_auth.py::test_scoped_operator_gets_404_for_other_tenants_on_every_route, web/test_mapping_page.py::test_a_scoped_operator_sees_only_its_tenant |
| operators | no, wrong, malformed, revoked credentials | web/test_auth.py::test_no_credential_is_401_for_api_clients, test_wrong_or_malformed_bearer_is_refused_on_every_route, test_revoked_bearer_is_refused, test_revoking_ends_browser_sessions_made_with_the_credential, test_a_bad_bearer_wins_over_a_good_session |
| HTML injection | tenant ids, status details, stats, labels on the connectors page | web/test_pages.py::test_everything_shown_is_html_escaped |
| HTML injection | values submitted to the mapping page; labels from describe | web/test_mapping_page.py::test_everything_shown_is_escaped, security/test_soql_injection.py::test_hostile_names_in_describe_are_shown_escaped_and_refused_when_picked |
| Markdown injection | quality and writeback failure tables, any text, rendered with raw HTML on | security/test_markdown_injection.py::test_quality_failure_tables_stay_inert, test_writeback_failure_tables_stay_inert |
| Markdown injection | a hostile record from Salesforce, through the sync into the check table | security/test_markdown_injection.py::test_a_hostile_record_from_salesforce_reaches_the_check_table_inert, defs/test_checks.py::test_record_values_cannot_break_the_markdown_table, defs/test_writeback_assets.py::test_failure_table_escapes_salesforce_messages |
| headers | CSP, framing, no-store, cookies on every route, caller and outcome | security/test_headers_every_route.py::test_every_route_answers_with_the_security_headers, web/test_pages.py::test_every_kind_of_response_carries_the_security_headers, test_an_unexpected_error_is_a_plain_500_with_the_headers, test_pages_have_no_script_and_no_inline_style |
| headers | HttpOnly, SameSite=Lax, Secure and `__Host-` cookies (https callback), port-named on loopback http | web/test_login_csrf.py::test_login_page_sets_a_lax_httponly_cookie_and_a_csrf_field, test_cookies_are_secure_by_default, test_an_https_callback_makes_both_cookies_secure_and_host_prefixed, web/test_connect_pages.py::test_starting_sets_a_port_scoped_httponly_lax_binding_cookie |
| secrets | in logs, outputs and fetched pages of the whole suite | secret_scan.py, connect/test_flow.py::test_no_secret_reaches_logs_reprs_or_messages, salesforce/test_oauth_state.py::test_messages_never_echo_the_state_or_the_secret |
"""
