"""Django's own date and time output (the admin's columns and forms) in the format every
studio page uses (recognition.formatting): 2026-12-06 03:26, 24-hour clock."""

DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"
