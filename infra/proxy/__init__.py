"""The TLS-terminating reverse proxy (Debian's nginx): its configuration template, the local
runner (`python -m infra.proxy`, `CLINIC_TLS_PROXY=1 make run`) and the compose rendering."""
