"""The people_split node and its person-level steps: paths inside an account, taken person by person."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from engine.language.model_base import Expression, NodeBase, NodeId, Strict
from engine.language.variants import NAME_PATTERN


class PersonEmail(Strict):
    """A people_split step: an email to each of the path's people, as send_email sends it (unsubscribed, erased and
    address-less people are skipped; each person gets it once per node visit)."""

    type: Literal["send_email"]
    subject: str = Field(min_length=1, description="Jinja2 template for the subject line")
    template: str = Field(min_length=1, description="Jinja2 HTML template, relative to the journey file")


class AssignRole(Strict):
    """A people_split step: put the path's people into a role of the journey's buying group, by hand (rules never
    take a hand-made assignment away)."""

    type: Literal["assign_role"]
    role: str = Field(min_length=1, description="a role of the journey's role template (buying_groups.yaml)")


class UpdatePerson(Strict):
    """A people_split step: set fields or custom attributes on each of the path's people."""

    type: Literal["update_person"]
    set: dict[str, str | int | float | bool | None] = Field(
        min_length=1, description="first_name, last_name, job_title, department, seniority, phone or an attribute"
    )


PersonStep = Annotated[PersonEmail | AssignRole | UpdatePerson, Field(discriminator="type")]
PERSON_STEP_TYPES = ("send_email", "assign_role", "update_person")
MAX_PEOPLE_PATHS = 20
MAX_PERSON_STEPS = 10


class PeoplePath(Strict):
    name: str | None = Field(
        None, pattern=NAME_PATTERN, max_length=32, description="shown in analytics; default path-1, path-2, ..."
    )
    when: Expression = Field(description="condition over person.* (person.role too), account.* and buying_group.*")
    steps: list[PersonStep] = Field(
        default_factory=list, max_length=MAX_PERSON_STEPS, description="run in order for the path's people"
    )


class PeopleOtherwise(Strict):
    steps: list[PersonStep] = Field(default_factory=list, max_length=MAX_PERSON_STEPS)


class PeopleSplit(NodeBase):
    """Person-level paths inside an account: each person takes the first path whose `when` holds (else `otherwise`),
    runs its steps, and the account goes on to `next` once every path is done."""

    type: Literal["people_split"]
    paths: list[PeoplePath] = Field(min_length=1, max_length=MAX_PEOPLE_PATHS)
    otherwise: PeopleOtherwise = Field(default_factory=PeopleOtherwise, description="people no path takes")
    next: NodeId

    def path_names(self) -> list[str]:
        """Each path's name, then 'otherwise': what the event log's person_path rows say."""
        return [path.name or f"path-{index + 1}" for index, path in enumerate(self.paths)] + ["otherwise"]

    def all_steps(self) -> list[list[PersonEmail | AssignRole | UpdatePerson]]:
        """The steps of each path, then those of `otherwise`, in the order path_names gives."""
        return [list(path.steps) for path in self.paths] + [list(self.otherwise.steps)]
