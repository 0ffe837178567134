"""The shared library every service uses: settings, database, Kafka, outbox, inbox, telemetry, security, money."""
