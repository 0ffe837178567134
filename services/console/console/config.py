from shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    service_name: str = "console"
    http_port: int = 8080
    intake_url: str = "http://127.0.0.1:8001"
    eligibility_url: str = "http://127.0.0.1:8002"
    calculation_url: str = "http://127.0.0.1:8003"
    approval_url: str = "http://127.0.0.1:8004"
    disbursement_url: str = "http://127.0.0.1:8005"
    upstream_timeout_s: float = 30.0
    oidc_authorize_url: str | None = None
    """Production: the identity provider's authorization endpoint; the sign-in page sends staff there."""
    oidc_client_id: str | None = None
    trace_search_url: str | None = None
    """The trace viewer's search for one settlement, `{settlement_id}` in it; in development the local Zipkin's."""

    def upstreams(self) -> dict[str, str]:
        return {"intake": self.intake_url, "eligibility": self.eligibility_url, "calculation": self.calculation_url,
                "approval": self.approval_url, "disbursement": self.disbursement_url}
