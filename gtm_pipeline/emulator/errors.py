"""The one exception the emulator's core raises for API-level failures."""

from __future__ import annotations


class EmulatorError(Exception):
    """An API error the server turns into the reference's JSON-array body.

    Carries the HTTP status and Salesforce's `errorCode` so the HTTP layer needs no mapping
    table of its own.
    """

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> list[dict]:
        return [{"message": self.message, "errorCode": self.error_code}]


def malformed(message: str) -> EmulatorError:
    return EmulatorError(400, "MALFORMED_QUERY", message)


def invalid_field(message: str) -> EmulatorError:
    return EmulatorError(400, "INVALID_FIELD", message)


def no_such_column(field: str, sobject: str) -> EmulatorError:
    return invalid_field(
        f"No such column '{field}' on entity '{sobject}'. If you are attempting to use a custom "
        "field, be sure to append the '__c' after the custom field name. Please reference your "
        "WSDL or the describe call for the appropriate names."
    )


def unsupported_type(sobject: str) -> EmulatorError:
    return EmulatorError(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
