# The local SMTP catcher (devtools/mail_catcher.py) for compose: prints each email with its link.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

RUN pip install --quiet aiosmtpd==1.4.6
COPY devtools/mail_catcher.py /app/mail_catcher.py
RUN useradd --system --uid 10001 catcher
USER catcher
CMD ["python", "/app/mail_catcher.py"]
