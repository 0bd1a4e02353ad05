"""Patient messages (issue 19, docs/patient-messages.md): intake tells a patient, once per
change and per consented channel, that their referral was booked, moved, cancelled or
waitlisted.

Pure (no I/O): `changes` (what changed between two referral snapshots), `contact` (over
which channels), `compose` (the words of each message), `gsm7` (an SMS that fits),
`outcome` (what a delivery attempt came to). With I/O: `store` (the message rows and
their events), `smtp_mail` (email by SMTP), `sms_gateway` (SMS by one HTTP gateway),
`sender` (the worker's thread).
"""
