"""The outside world as a simulation sees it: a mailer that keeps nothing and sends nothing, external_action
services answered from the scenario, and a CRM webhook that answers 200 without leaving the process."""

from __future__ import annotations

from email.message import EmailMessage

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.services import ServiceActivities
from engine.simulate.scenario import ServiceAnswer
from engine.workflow.contracts import ServiceCallRequest, ServiceCallResult


class CountingDelivery:
    """Counts the messages the real email activities hand over; none is written or sent anywhere."""

    def __init__(self) -> None:
        self.delivered = 0

    def deliver(self, message: EmailMessage, key: str) -> None:
        self.delivered += 1


class SimulatedServices(ServiceActivities):
    """`call_service` answered from the scenario's `services:` (by external_action node id, then by service name;
    200 {} when neither is given). Errors take the real activity's failure types, so the workflow branches the same."""

    def __init__(self, answers: dict[str, ServiceAnswer]) -> None:
        super().__init__()
        self.answers = answers
        self.calls = 0

    @activity.defn(name="call_service")
    async def call_service(self, request: ServiceCallRequest) -> ServiceCallResult:
        self.calls += 1
        answer = self.answers.get(request.node_id) or self.answers.get(request.service_name) or ServiceAnswer()
        where = f"service '{request.service_name}' (simulated, node '{request.node_id}')"
        if answer.status == "timeout":
            raise ApplicationError(f"{where}: no answer", type="ServiceTimeout", non_retryable=True)
        assert isinstance(answer.status, int)
        if answer.status >= 300:
            kind = "ServiceUnavailable" if answer.status >= 500 or answer.status == 429 else "ServiceRejected"
            # Not retried: a scripted answer would be the same on every attempt.
            raise ApplicationError(f"{where}: answered {answer.status}", type=kind, non_retryable=True)
        body = answer.body if request.reads_response else None
        return ServiceCallResult(status_code=answer.status, body=body)


def offline_http() -> httpx.AsyncClient:
    """An HTTP client whose every request is answered 200 here: the handoff's CRM webhook never leaves."""
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})))
