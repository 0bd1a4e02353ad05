"""Patient messages (issue 19, docs/patient-messages.md): intake tells a patient, once per
change and per consented channel, that their referral was booked, moved, cancelled or
waitlisted.

Pure (no I/O): `changes` (what changed between two referral snapshots), `compose` (the
words of each message), `gsm7` (an SMS that fits). With I/O: `store` (the message rows and
their events), `email` (SMTP), `sms` (the HTTP gateway), `sender` (the worker's thread).
"""
