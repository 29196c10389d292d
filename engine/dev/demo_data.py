"""The demo data set: accounts, people and solution interests to try the example journeys on.

Everything comes from one `random.Random(SEED)`, so every run on every machine produces the same rows
(created_at dates included, all within 2025), and the first N accounts are the same whatever the total.
The audiences of journeys/*.yaml each match a few dozen accounts, and the job titles and departments
cover every role rule of buying_groups.yaml. Mail can never reach anyone: domains use the reserved
`.example` TLD. Loading is idempotent and goes through the import's upsert: accounts and people that exist
(by id, by email, or by account and name for people without one) are left as they are, so what a journey
changed survives a reload;
solution interests are upserted because they mirror buying_groups.yaml. Buying groups are not created
here: that is the buying-group engine's job.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.data.fields import Kind
from engine.data.upsert import CHUNK, upsert
from engine.data.validate import Record
from engine.db import Account, Person, SolutionInterestRecord
from engine.language.workspace import load_workspace

SEED = 20250117
EPOCH = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)

# fmt: off
# (industry, weight, name endings): agriculture-adjacent industries dominate, as in a seed company's CRM.
INDUSTRIES = (
    ("Agriculture", 20, ("Agritech", "Farms", "Seeds", "Agro", "Growers", "Harvest")),
    ("Biotech", 12, ("Biosciences", "Genomics", "Bio", "Therapeutics")),
    ("Food Production", 10, ("Foods", "Produce", "Orchards", "Dairy")),
    ("Food & Beverage", 6, ("Beverages", "Brewing", "Kitchens", "Provisions")),
    ("Manufacturing", 8, ("Industries", "Manufacturing", "Works", "Fabrication")),
    ("Software", 8, ("Software", "Labs", "Systems", "Analytics")),
    ("Healthcare", 6, ("Health", "Medical", "Care", "Clinics")),
    ("Retail", 6, ("Retail", "Markets", "Stores", "Outfitters")),
    ("Logistics", 6, ("Logistics", "Freight", "Shipping", "Transport")),
    ("Energy", 5, ("Energy", "Power", "Solar", "Renewables")),
    ("Financial Services", 5, ("Capital", "Financial", "Partners", "Insurance")),
)
AGRI = frozenset({"Agriculture", "Food Production"})
LABS = frozenset({"Agriculture", "Biotech", "Food Production", "Food & Beverage", "Healthcare"})
PREFIXES = (  # company names: Greenfield Agritech, Cedarbrook Foods, ...
    "Green Blue Silver North South Sun River Prairie Summit Golden Harbor Cedar Oak Maple Iron Clear Bright Red "
    "High Stone Pine Willow Eagle Falcon Terra Nova Vista Apex True Wild Heart Amber Meadow Copper Aspen Lake"
)
SUFFIXES = "field land ridge gate way point brook view crest vale wood stone water spring bridge haven"
# (country, weight, time zones, first names, last names)
COUNTRIES = (
    ("US", 34, ("America/Chicago", "America/New_York", "America/Los_Angeles", "America/Denver"),
     "James Mary Robert Jennifer Michael Linda David Sarah Emily Daniel Jessica Kevin Ashley Brian Megan Tyler",
     "Smith Johnson Williams Brown Jones Garcia Miller Davis Wilson Anderson Taylor Thomas Moore Martin Clark"),
    ("DE", 8, ("Europe/Berlin",), "Lukas Anna Jonas Lena Felix Marie Paul Sophie Maximilian Lea Jürgen Katrin",
     "Müller Schmidt Schneider Fischer Weber Wagner Becker Hoffmann Schäfer Koch Richter Wolf"),
    ("GB", 8, ("Europe/London",), "Oliver Amelia George Isla Harry Ava Jack Emily Charlotte William Sophie Thomas",
     "Smith Jones Taylor Brown Williams Wilson Evans Thomas Roberts Walker Wright Hughes"),
    ("FR", 6, ("Europe/Paris",), "Léa Hugo Chloé Louis Manon Gabriel Camille Jules Inès Théo François Élodie",
     "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Lefèvre Girard"),
    ("NL", 6, ("Europe/Amsterdam",), "Daan Emma Sem Julia Lucas Sophie Bram Fleur Thijs Sanne Jeroen Anouk",
     "Jansen Visser Smit Meijer Mulder Bos Vos Peters Hendriks Dekker Bakker Brouwer"),
    ("BR", 8, ("America/Sao_Paulo",), "João Maria Pedro Ana Lucas Juliana Gabriel Fernanda Rafael Camila Thiago",
     "Silva Santos Oliveira Souza Lima Pereira Costa Ferreira Almeida Ribeiro Carvalho Gomes"),
    ("IN", 7, ("Asia/Kolkata",), "Aarav Priya Rohan Ananya Vikram Neha Arjun Kavya Rahul Isha Sanjay Deepa",
     "Sharma Patel Singh Kumar Gupta Reddy Iyer Nair Mehta Rao Joshi Desai"),
    ("JP", 5, ("Asia/Tokyo",), "Haruto Yui Sota Aoi Riku Hina Kenji Sakura Takumi Yuki Hiroshi Emi",
     "Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kobayashi Kato Yoshida Yamada"),
    ("KR", 4, ("Asia/Seoul",), "Min-jun Seo-yeon Ji-ho Ha-eun Do-yun Su-bin Ji-woo Hye-jin Joon-ho Eun-ji",
     "Kim Lee Park Choi Jung Kang Cho Yoon Jang Lim Han Shin"),
    ("AU", 6, ("Australia/Sydney",), "Jack Olivia Noah Charlotte Liam Mia Lachlan Chloe Cooper Ruby Harrison Zoe",
     "Smith Jones Williams Brown Wilson Taylor Johnson White Martin Anderson Kelly Ryan"),
)
SALES_REPS = ("jordan.blake", "maya.okonkwo", "lars.henriksen", "camila.reyes", "ethan.zhao", "nina.kowalski")
SOURCES = ("inbound", "outbound", "webinar", "trade show", "partner referral", "content download")
# (employees from, to, weight): roughly log-uniform between 20 and 50,000.
SIZES = ((20, 100, 22), (100, 500, 30), (500, 2000, 25), (2000, 10000, 15), (10000, 50001, 8))

Title = tuple[str, str, str]  # job title, department, seniority
LEADERS: tuple[Title, ...] = (
    ("Chief Executive Officer", "Executive", "c-level"), ("CTO", "Engineering", "c-level"),
    ("Chief Information Officer", "IT", "c-level"), ("CFO", "Finance", "c-level"), ("COO", "Operations", "c-level"),
    ("VP Engineering", "Engineering", "vp"), ("VP Operations", "Operations", "vp"), ("Head of Data", "Data", "vp"),
    ("Head of IT", "IT", "vp"), ("Head of Procurement", "Procurement", "vp"),
    ("Director of Engineering", "Engineering", "director"), ("IT Director", "IT", "director"),
    ("Finance Director", "Finance", "director"), ("Operations Director", "Operations", "director"),
)
STAFF: tuple[Title, ...] = (
    ("Software Engineer", "Engineering", "individual contributor"), ("Staff Engineer", "Engineering", "senior"),
    ("Senior Software Engineer", "Engineering", "senior"), ("Data Engineer", "Data", "individual contributor"),
    ("Security Engineer", "Security", "individual contributor"), ("Solutions Architect", "IT", "senior"),
    ("Enterprise Architect", "IT", "senior"), ("Engineering Manager", "Engineering", "manager"),
    ("IT Manager", "IT", "manager"), ("Data Science Lead", "Data", "manager"),
    ("Data Analyst", "Data", "individual contributor"), ("Procurement Manager", "Procurement", "manager"),
    ("Purchasing Specialist", "Purchasing", "individual contributor"), ("Financial Controller", "Finance", "manager"),
    ("Financial Analyst", "Finance", "individual contributor"), ("Operations Manager", "Operations", "manager"),
    ("Operations Analyst", "Operations", "individual contributor"), ("Supply Chain Manager", "Operations", "manager"),
    ("Customer Success Manager", "Customer Success", "manager"), ("Marketing Manager", "Marketing", "manager"),
    ("Support Specialist", "Support", "individual contributor"),
    ("Business Analyst", "Sales", "individual contributor"),
)
LAB: tuple[Title, ...] = (
    ("Chief Science Officer", "R&D", "c-level"), ("VP Research & Development", "R&D", "vp"),
    ("Research Director", "Research", "director"), ("Research Scientist", "R&D", "individual contributor"),
    ("Senior Scientist", "R&D", "senior"), ("Lab Manager", "Laboratory", "manager"),
    ("Laboratory Technician", "Laboratory", "individual contributor"),
)
FARM: tuple[Title, ...] = (
    ("Head of Agronomy", "Agronomy", "vp"), ("Agronomist", "Agronomy", "individual contributor"),
    ("Senior Agronomist", "Agronomy", "senior"), ("Plant Breeder", "R&D", "senior"),
    ("Crop Scientist", "Research", "individual contributor"), ("Soil Scientist", "Research", "individual contributor"),
    ("Field Trial Manager", "Research", "manager"), ("Field Operations Manager", "Operations", "manager"),
    ("Grower Relations Manager", "Sales", "manager"), ("Farm Manager", "Operations", "manager"),
    ("Extension Specialist", "Agronomy", "individual contributor"),
)
# fmt: on
# The seed document's example account: a whole buying group for AI-based seeds, and then some.
# (first, last, title, department, seniority, engagement, has email, unsubscribed)
ACME_PEOPLE = (
    ("Elena", "Marquez", "Chief Technology Officer", "Engineering", "c-level", 64.0, True, False),
    ("David", "Okafor", "VP Engineering", "Engineering", "vp", 48.0, True, False),
    ("Priya", "Raman", "Senior Software Engineer", "Engineering", "senior", 78.0, True, False),
    ("Tomasz", "Nowak", "Solutions Architect", "IT", "senior", 55.0, True, False),
    ("Hannah", "Becker", "Data Engineer", "Data", "individual contributor", 37.0, True, False),
    ("Robert", "Chen", "Procurement Manager", "Procurement", "manager", 22.0, True, False),
    ("Sofia", "Rossi", "CFO", "Finance", "c-level", 15.0, True, False),
    ("Kenji", "Watanabe", "Senior Agronomist", "Agronomy", "senior", 67.0, True, False),
    ("Amara", "Diallo", "Field Trial Manager", "Research", "manager", 58.0, True, False),
    ("Lucas", "Ferreira", "Operations Manager", "Operations", "manager", 30.0, True, False),
    ("Grace", "Miller", "Farm Manager", "Operations", "manager", 12.0, False, False),
    ("Jonas", "Lindqvist", "Financial Analyst", "Finance", "individual contributor", 5.0, True, True),
)


@dataclass
class _DemoSet:
    accounts: list[Account]
    people: list[Person]


def load_demo_data(engine: Engine, journeys_folder: Path = Path("journeys"), accounts: int = 300) -> dict[str, int]:
    """Insert the demo accounts, people and solution interests that are missing; return the set's sizes.

    Accounts and people go through the import's upsert (engine/data/upsert.py), keeping what exists. They
    record no events: the demo set is the state the journeys start from, not news for running ones."""
    interests = _solution_interests(journeys_folder)
    demo = build_demo_set(accounts)
    with Session(engine) as session:
        for interest in interests:
            session.merge(interest)
        session.commit()
    with engine.begin() as connection:
        kinds: tuple[tuple[Kind, list[Record]], ...] = (
            ("accounts", _records(demo.accounts)),
            ("people", _records(demo.people)),
        )
        for kind, records in kinds:
            for start in range(0, len(records), CHUNK):
                upsert(connection, kind, records[start : start + CHUNK], keep_existing=True, events=False)
    return {"accounts": len(demo.accounts), "people": len(demo.people), "solution interests": len(interests)}


def _records(rows: list[Account] | list[Person]) -> list[Record]:
    records = []
    for row in rows:
        values = row.model_dump(exclude={"attributes", "updated_at"} | ({"id"} if isinstance(row, Person) else set()))
        kind: Kind = "accounts" if isinstance(row, Account) else "people"
        key = row.id if isinstance(row, Account) else (row.email.lower() if row.email else None)
        records.append(Record(kind, key, values, dict(row.attributes)))
    return records


def _solution_interests(folder: Path) -> list[SolutionInterestRecord]:
    workspace = load_workspace(folder)
    if workspace.issues:
        raise ValueError("\n".join(issue.render() for issue in workspace.issues))
    return [
        SolutionInterestRecord(id=i.id, name=i.name, role_template=i.role_template, description=i.description)
        for i in workspace.buying_groups.solution_interests
    ]


def build_demo_set(count: int) -> _DemoSet:
    """The demo rows, not yet stored: the same for the same count, and the first N alike for any count."""
    rng = random.Random(SEED)
    demo = _DemoSet([], [])
    acme = Account(
        id="acme-corp",
        name="Acme Corp",
        domain="acme-corp.example",
        industry="Agriculture",
        employees=1200,
        annual_revenue=250_000_000.0,
        country="US",
        timezone="America/Chicago",
        owner_email=f"{SALES_REPS[0]}@sales.example",
        attributes={
            "segment": "enterprise",
            "source": "trade show",
            "last_engaged_days": 12,
            "webinar_registrations": 2,
            "irrigated_hectares": 4200,
        },
        created_at=EPOCH,
    )
    demo.accounts.append(acme)
    for first, last, title, department, seniority, score, has_email, unsubscribed in ACME_PEOPLE:
        email = f"{_ascii(first)}.{_ascii(last)}@{acme.domain}" if has_email else None
        demo.people.append(
            Person(
                account_id=acme.id,
                email=email,
                first_name=first,
                last_name=last,
                job_title=title,
                department=department,
                seniority=seniority,
                phone=_phone(rng),
                unsubscribed=unsubscribed,
                engagement_score=score,
                created_at=EPOCH + timedelta(days=3),
            )
        )
    slugs = {acme.id}
    for _ in range(count - 1):
        account = _account(rng, slugs)
        demo.accounts.append(account)
        demo.people.extend(_people(rng, account))
    return demo


def _account(rng: random.Random, slugs: set[str]) -> Account:
    industry, _, endings = rng.choices(INDUSTRIES, weights=[row[1] for row in INDUSTRIES])[0]
    name = slug = ""
    while not slug or slug in slugs:
        name = f"{rng.choice(PREFIXES.split())}{rng.choice(SUFFIXES.split())} {rng.choice(endings)}"
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slugs.add(slug)
    country, _, zones, _, _ = rng.choices(COUNTRIES, weights=[row[1] for row in COUNTRIES])[0]
    low, high, _ = rng.choices(SIZES, weights=[row[2] for row in SIZES])[0]
    employees = rng.randrange(low, high)
    revenue = None if rng.random() < 0.12 else float(employees * rng.randrange(80, 400) * 1000)
    segment = "enterprise" if employees >= 1000 else "mid-market" if employees >= 200 else "smb"
    quiet = rng.random() < 0.3  # about a third have not engaged for 90 days or more
    attributes: dict[str, Any] = {
        "segment": segment,
        "source": rng.choice(SOURCES),
        "last_engaged_days": rng.randrange(90, 720) if quiet else rng.randrange(0, 90),
        "webinar_registrations": rng.randrange(1, 6) if rng.random() < 0.25 else 0,
    }
    # About one in eight signed already (customer-welcome's audience). From the id, not the generator: drawing
    # one more number would give every later account other data.
    attributes["lifecycle_stage"] = "customer" if hashlib.sha256(slug.encode()).digest()[0] < 32 else "prospect"
    if industry in AGRI:
        attributes["irrigated_hectares"] = rng.choice((rng.randrange(20, 500), rng.randrange(500, 25000)))
    return Account(
        id=slug,
        name=name,
        domain=f"{slug}.example",
        industry=industry,
        employees=employees,
        annual_revenue=revenue,
        country=country,
        timezone=rng.choice(zones),
        owner_email=f"{rng.choice(SALES_REPS)}@sales.example",
        attributes=attributes,
        created_at=EPOCH + timedelta(days=rng.randrange(0, 300), minutes=rng.randrange(0, 600)),
    )


def _people(rng: random.Random, account: Account) -> list[Person]:
    pool = STAFF + (LAB if account.industry in LABS else ()) + (FARM * 2 if account.industry in AGRI else ())
    home = next(row for row in COUNTRIES if row[0] == account.country)
    people: list[Person] = []
    taken: set[str] = set()
    for index in range(rng.randrange(3, 9)):
        title, department, seniority = rng.choice(LEADERS if index == 0 else pool)
        names = home if rng.random() < 0.8 else rng.choice(COUNTRIES)
        first, last = rng.choice(names[3].split()), rng.choice(names[4].split())
        email: str | None = None
        if rng.random() >= 0.02:  # a few people have no address: journeys must skip them
            local = base = f"{_ascii(first)}.{_ascii(last)}"
            number = 1
            while local in taken:  # two people of the same name: anna.muller, anna.muller2
                number += 1
                local = f"{base}{number}"
            taken.add(local)
            email = f"{local}@{account.domain}"
        people.append(
            Person(
                account_id=account.id,
                email=email,
                first_name=first,
                last_name=last,
                job_title=title,
                department=department,
                seniority=seniority,
                phone=_phone(rng),
                unsubscribed=rng.random() < 0.03,
                engagement_score=float(rng.randrange(0, 101)),
                created_at=account.created_at + timedelta(days=rng.randrange(0, 60), minutes=rng.randrange(0, 600)),
            )
        )
    return people


def _phone(rng: random.Random) -> str | None:
    # 555-0100 to 555-0199 are reserved for fiction.
    return None if rng.random() < 0.4 else f"+1-{rng.randrange(201, 990)}-555-01{rng.randrange(100):02d}"


def _ascii(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9-]", "", plain.lower())
