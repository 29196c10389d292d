"""What every report returns: a pydantic model that prints as JSON for scripts and feeds the pages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ReportModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class Report(ReportModel):
    report: str
    container: str
    filters: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
