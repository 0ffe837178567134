"""The wire contract between services: topics, the envelope and every event's payload.

The JSON Schemas in `contracts/events/` are generated from these models
(`make contracts`) and a test keeps the two in agreement.
"""
