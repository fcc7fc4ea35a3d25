"""Arith: seeded procedural multi-step arithmetic word problems, generated rather than read, graded like GSM8K.

Each template draws names, objects, units and small numbers from a ``random.Random`` and writes a question
and a GSM8K-style gold chain: one step per line, each with one equation ``a op b = c`` (``+ - * /`` on
integers, exact and non-negative); the answer is the last result. Splits are generated in the order of
``Arith.sizes`` (test, dev, train: the evaluation splits do not move when the train size changes), each
from its own seed, and a split skips every question an earlier one (or itself) already holds.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prunelens.datasets.base import Example, SplitRule, require
from prunelens.datasets.gsm8k import GSM8K
from prunelens.core.errors import BadRecordError, PrunelensError

_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv}

FEMALE = ("Maya", "Ava", "Nora", "Lena", "Zoe", "Emma", "Sofia", "Priya", "Hana", "Rosa", "Mia", "Chloe")
MALE = ("Leo", "Omar", "Ben", "Jack", "Ravi", "Theo", "Diego", "Kenji", "Liam", "Noah", "Sam", "Felix")
SMALL_ITEMS = ("pens", "stickers", "pencils", "marbles", "cards", "erasers", "beads", "stamps")
FRUITS = ("apples", "pears", "oranges", "bananas", "grapes", "plums", "cherries", "peaches")
MARKETS = ("Fresh Market", "Green Grocer", "the corner shop", "Sunny Farm Stand", "Hill Street Market")
BAKERIES = ("Bella's Bakery", "Golden Crust", "Sweet Oven", "Rosie's Bakery", "the village bakery")
BAKED = ("muffins", "cookies", "rolls", "bagels", "cupcakes", "pretzels")
CHARITIES = ("the food bank", "a shelter", "the local school", "the hospital", "the fire station")
VENUES = ("the city zoo", "Riverside Park", "the science museum", "Pine Lake Aquarium", "the county fair")
LIBRARIES = ("Oakwood Library", "the Maple Street library", "the school library", "the town library")
WORKPLACES = ("the bakery", "the bookshop", "a cafe", "the garden centre", "the pet shop")
PURCHASES = ("bike", "game", "jacket", "backpack", "lamp", "helmet", "watch")
INSTRUMENTS = ("piano", "guitar", "violin", "flute", "drums", "cello")
BEACHES = ("Pine Beach", "Shell Bay", "the lake shore", "Sandy Cove")
FLOWERS = ("tulips", "roses", "daisies", "lilies", "sunflowers")
GARDENS = ("the back garden", "the school garden", "the community garden", "the park")
MULTIPLES = (("twice", 2), ("three times", 3), ("four times", 4))


@dataclass(frozen=True)
class Person:
    """A named person and the pronouns that refer to them."""

    name: str
    he: str  # subject pronoun
    him: str  # object pronoun
    his: str  # possessive

    @property
    def He(self) -> str:  # noqa: N802  (the capitalised pronoun, as written in templates)
        return self.he.capitalize()


@dataclass(frozen=True)
class Problem:
    """One drawn problem: the question, the gold chain's lines (one equation each) and the answer."""

    question: str
    lines: list[str]
    answer: int


def calc(a: int, op: str, b: int) -> tuple[str, int]:
    """The equation text ``"a op b = c"`` and c; templates only ask for exact non-negative integer results."""
    if op == "/" and a % b:
        raise ValueError(f"{a} / {b} is not an integer")
    value = _OPS[op](a, b)
    if value < 0:
        raise ValueError(f"{a} {op} {b} is negative")
    return f"{a} {op} {b} = {value}", value


def capital(text: str) -> str:
    """``text`` with its first letter upper-cased (a name that opens a sentence: "the school library")."""
    return text[:1].upper() + text[1:]


class Draw:
    """The seeded choices a template makes."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def num(self, low: int, high: int, step: int = 1) -> int:
        """A number in low..high (inclusive) on the grid low, low + step, ..."""
        return low + step * self.rng.randrange((high - low) // step + 1)

    def pick(self, options):
        return options[self.rng.randrange(len(options))]

    def person(self, *others: Person) -> Person:
        """Someone not among ``others``."""
        while True:
            if self.rng.randrange(2):
                person = Person(self.pick(FEMALE), "she", "her", "her")
            else:
                person = Person(self.pick(MALE), "he", "him", "his")
            if all(person.name != other.name for other in others):
                return person


TEMPLATES: list[Callable[[Draw], Problem]] = []


def template(function: Callable[[Draw], Problem]) -> Callable[[Draw], Problem]:
    """Register a template; its function name is the ``template`` recorded with each row."""
    TEMPLATES.append(function)
    return function


@template
def packs_given_away(d: Draw) -> Problem:
    p = d.person()
    q = d.person(p)
    item, packs, per = d.pick(SMALL_ITEMS), d.num(2, 9), d.num(3, 12)
    e1, total = calc(packs, "*", per)
    given = d.num(1, total - 1)
    e2, left = calc(total, "-", given)
    return Problem(
        f"{p.name} buys {packs} packs of {per} {item}. {p.He} gives {given} of them to {q.name}. "
        f"How many {item} does {p.name} have left?",
        [f"{p.name} buys {packs} packs of {per} {item}, so {p.he} has {e1} {item}.",
         f"{p.He} gives {given} of them to {q.name}, so {e2} {item} are left."],
        left,
    )  # fmt: skip


@template
def fruit_change(d: Draw) -> Problem:
    p = d.person()
    f1 = d.pick(FRUITS)
    f2 = d.pick([f for f in FRUITS if f != f1])
    kg1, price1, kg2, price2 = d.num(2, 6), d.num(2, 9), d.num(2, 6), d.num(2, 9)
    e1, cost1 = calc(kg1, "*", price1)
    e2, cost2 = calc(kg2, "*", price2)
    e3, spent = calc(cost1, "+", cost2)
    bill = d.pick([b for b in (20, 50, 100, 200) if b > spent][:2])
    e4, change = calc(bill, "-", spent)
    return Problem(
        f"{p.name} buys {kg1} kg of {f1} at ${price1} per kilogram and {kg2} kg of {f2} at ${price2} per kilogram "
        f"at {d.pick(MARKETS)}. {p.He} pays with a ${bill} bill. How much change does {p.he} get, in dollars?",
        [f"The {f1} cost {e1} dollars.", f"The {f2} cost {e2} dollars.",
         f"So {p.he} spends {e3} dollars in total.", f"Therefore {p.his} change is {e4} dollars."],
        change,
    )  # fmt: skip


@template
def reading_weekend(d: Draw) -> Problem:
    p = d.person()
    rate, hours = d.num(5, 15), d.num(1, 4)
    word, times = d.pick(MULTIPLES[:2])
    e1, sunday = calc(hours, "*", times)
    e2, total = calc(hours, "+", sunday)
    e3, pages = calc(total, "*", rate)
    return Problem(
        f"{p.name} reads {rate} pages an hour. {p.He} reads for {hours} hours on Saturday and {word} as many hours "
        f"on Sunday. How many pages does {p.he} read over the weekend?",
        [f"On Sunday {p.he} reads {word} as long, {e1} hours.", f"That is {e2} hours in total.",
         f"So {p.he} reads {e3} pages."],
        pages,
    )  # fmt: skip


@template
def collection_compare(d: Draw) -> Problem:
    p = d.person()
    q = d.person(p)
    r = d.person(p, q)
    item = d.pick(SMALL_ITEMS)
    word, times = d.pick(MULTIPLES)
    first = d.num(3, 20)
    e1, second = calc(first, "*", times)
    fewer = d.num(1, second - 1)
    e2, third = calc(second, "-", fewer)
    e3, pair = calc(first, "+", second)
    e4, total = calc(pair, "+", third)
    return Problem(
        f"{p.name} has {first} {item}. {q.name} has {word} as many {item} as {p.name}, and {r.name} has {fewer} "
        f"fewer {item} than {q.name}. How many {item} do they have altogether?",
        [f"{q.name} has {e1} {item}.", f"{r.name} has {e2} {item}.",
         f"{p.name} and {q.name} have {e3} {item} together.", f"So they have {e4} {item} in total."],
        total,
    )  # fmt: skip


@template
def half_sold(d: Draw) -> Problem:
    bakery, goods = d.pick(BAKERIES), d.pick(BAKED)
    baked = d.num(20, 120, 2)
    e1, half = calc(baked, "/", 2)
    more = d.num(1, half - 1)
    e2, left = calc(half, "-", more)
    return Problem(
        f"{capital(bakery)} bakes {baked} {goods} in the morning. It sells half of them before noon and {more} "
        f"more in the afternoon. How many {goods} does it have left?",
        [f"It sells {e1} {goods} before noon, so {half} are left.",
         f"Then it sells {more} more, so {e2} {goods} are left."],
        left,
    )  # fmt: skip


@template
def library_third(d: Draw) -> Problem:
    shelves, kind = d.num(2, 6), d.pick(("books", "novels", "comics", "atlases"))
    each = d.num(2, 15) if shelves % 2 == 0 else d.num(2, 14, 2)
    rest = shelves * each  # two thirds of the books: even
    books = 3 * rest // 2
    e1, novels = calc(books, "/", 3)
    e2, rest = calc(books, "-", novels)
    e3, each = calc(rest, "/", shelves)
    return Problem(
        f"{capital(d.pick(LIBRARIES))} gets {books} new {kind}. A third of them are for children, and the rest "
        f"are shared equally among {shelves} shelves. How many {kind} go on each shelf?",
        [f"A third of the {kind} is {e1} for children.", f"The rest is {e2} {kind}.",
         f"Each shelf gets {e3} {kind}."],
        each,
    )  # fmt: skip


@template
def cycle_and_walk(d: Draw) -> Problem:
    p = d.person()
    speed, hours = d.num(4, 24, 2), d.num(1, 6)
    e1, cycled = calc(speed, "*", hours)
    e2, walked = calc(cycled, "/", 2)
    e3, total = calc(cycled, "+", walked)
    return Problem(
        f"{p.name} cycles at {speed} km an hour for {hours} hours. Then {p.he} walks half as far as {p.he} cycled. "
        f"How many kilometres does {p.he} travel in all?",
        [f"{p.He} cycles {e1} km.", f"{p.He} walks half of that, {e2} km.", f"So {p.he} travels {e3} km."],
        total,
    )  # fmt: skip


@template
def practice_hours(d: Draw) -> Problem:
    p = d.person()
    minutes, days = d.pick((15, 20, 30, 45)), d.num(2, 7)
    e1, week = calc(minutes, "*", days)
    hours = week // 60 + d.num(1, 2)
    extra = 60 * hours - week
    e2, total = calc(week, "+", extra)
    e3, hours = calc(total, "/", 60)
    return Problem(
        f"{p.name} practises the {d.pick(INSTRUMENTS)} for {minutes} minutes each day for {days} days, plus an "
        f"extra {extra} minutes on Sunday. How many hours does {p.he} practise in total?",
        [f"First, {p.he} practises {e1} minutes over the {days} days.", f"With Sunday, that is {e2} minutes.",
         f"Since an hour has 60 minutes, {p.he} practises {e3} hours."],
        hours,
    )  # fmt: skip


@template
def ribbon_pieces(d: Draw) -> Problem:
    p = d.person()
    pieces, each, cut = d.num(2, 8), d.num(3, 15), d.num(5, 40)
    length = pieces * each + cut
    e1, rest = calc(length, "-", cut)
    e2, each = calc(rest, "/", pieces)
    return Problem(
        f"{p.name} has a ribbon that is {length} cm long. {p.He} cuts off {cut} cm for a bow and cuts the rest "
        f"into {pieces} equal pieces. How long is each piece, in cm?",
        [f"After the bow, {e1} cm of ribbon is left.", f"So each piece is {e2} cm long."],
        each,
    )  # fmt: skip


@template
def wages_left(d: Draw) -> Problem:
    p = d.person()
    wage, hours, weeks = d.num(5, 12), d.num(2, 6), d.num(2, 4)
    e1, weekly = calc(wage, "*", hours)
    e2, earned = calc(weekly, "*", weeks)
    spent = d.num(5, earned - 5, 5)  # earned >= 20
    thing = d.pick(PURCHASES)
    e3, left = calc(earned, "-", spent)
    return Problem(
        f"{p.name} earns ${wage} per hour at {d.pick(WORKPLACES)}. {p.He} works {hours} hours each week. After "
        f"{weeks} weeks, {p.he} spends ${spent} on a {thing}. How many dollars does {p.he} have left?",
        [f"Each week {p.he} earns {e1} dollars.", f"In {weeks} weeks {p.he} earns {e2} dollars.",
         f"After buying the {thing}, {p.he} has {e3} dollars left."],
        left,
    )  # fmt: skip


@template
def bakery_donation(d: Draw) -> Problem:
    bakery, goods = d.pick(BAKERIES), d.pick(BAKED)
    trays, per = d.num(2, 8), d.num(6, 12)
    e1, baked = calc(trays, "*", per)
    sold = d.pick([s for s in range(1, baked - 2) if (baked - s) % 3 == 0])
    e2, rest = calc(baked, "-", sold)
    e3, given = calc(rest, "/", 3)
    e4, kept = calc(rest, "-", given)
    return Problem(
        f"{capital(bakery)} bakes {trays} trays of {per} {goods}. It sells {sold} of them and gives a third of the "
        f"rest to {d.pick(CHARITIES)}. How many {goods} does it keep?",
        [f"It bakes {e1} {goods}.", f"After selling {sold}, {e2} are left.", f"It gives away {e3} of them.",
         f"Finally, it keeps {e4} {goods}."],
        kept,
    )  # fmt: skip


@template
def tickets(d: Draw) -> Problem:
    p = d.person()
    q = d.person(p)
    adult, child = d.num(8, 20), d.num(3, 9)
    adults, children = d.num(2, 5), d.num(2, 6)
    e1, cost1 = calc(adults, "*", adult)
    e2, cost2 = calc(children, "*", child)
    e3, total = calc(cost1, "+", cost2)
    return Problem(
        f"Tickets to {d.pick(VENUES)} cost ${adult} for adults and ${child} for children. {p.name} and {q.name} "
        f"buy {adults} adult tickets and {children} child tickets. How much do they pay, in dollars?",
        [f"The adult tickets cost {e1} dollars.", f"The child tickets cost {e2} dollars.",
         f"So they pay {e3} dollars in total."],
        total,
    )  # fmt: skip


@template
def class_travel(d: Draw) -> Problem:
    p = d.person()
    students = d.num(16, 40, 2)
    e1, walk = calc(students, "/", 2)
    e2, rest = calc(students, "-", walk)
    bus = d.num(1, rest - 1)
    e3, bikes = calc(rest, "-", bus)
    return Problem(
        f"There are {students} students in {p.name}'s class. Half of them walk to school, {bus} come by bus, and "
        f"the rest ride bikes. How many students ride bikes?",
        [f"Half of the class is {e1} students who walk.", f"That leaves {e2} students.",
         f"Of them, {bus} take the bus, so {e3} ride bikes."],
        bikes,
    )  # fmt: skip


@template
def shells_shared(d: Draw) -> Problem:
    p = d.person()
    q = d.person(p)
    friends, each = d.num(2, 6), d.num(3, 15)
    total = friends * each
    first = d.num(2, (total - 1) // 2)
    more = total - 2 * first
    e1, second = calc(first, "+", more)
    e2, total = calc(first, "+", second)
    e3, each = calc(total, "/", friends)
    return Problem(
        f"{p.name} collects {first} shells at {d.pick(BEACHES)} and {q.name} collects {more} more than {p.him}. "
        f"They share the shells equally among {friends} friends. How many shells does each friend get?",
        [f"{q.name} collects {e1} shells.", f"Together they have {e2} shells.",
         f"Each friend gets {e3} shells."],
        each,
    )  # fmt: skip


@template
def truck_load(d: Draw) -> Problem:
    p = d.person()
    fruit, weight, crates = d.pick(FRUITS), d.num(5, 20), d.num(2, 9)
    e1, load = calc(crates, "*", weight)
    before = d.num(10, 200, 10)
    e2, carried = calc(before, "+", load)
    capacity = (carried // 50 + d.num(1, 3)) * 50
    e3, room = calc(capacity, "-", carried)
    return Problem(
        f"A crate of {fruit} weighs {weight} kg. {p.name} loads {crates} crates onto a truck that already carries "
        f"{before} kg. The truck can carry {capacity} kg. How many more kilograms can it take?",
        [f"The {crates} crates weigh {e1} kg in total.", f"With them the truck carries {e2} kg.",
         f"So it can take {e3} more kg."],
        room,
    )  # fmt: skip


@template
def tank_fill(d: Draw) -> Problem:
    p = d.person()
    buckets, litres = d.num(2, 6), d.num(2, 8)
    e2, poured = calc(buckets, "*", litres)
    capacity = 2 * (poured + d.num(1, 40))
    e1, half = calc(capacity, "/", 2)
    e3, now = calc(half, "+", poured)
    e4, needed = calc(capacity, "-", now)
    return Problem(
        f"A fish tank holds {capacity} litres and it is half full. {p.name} pours in {buckets} buckets of "
        f"{litres} litres each. How many more litres are needed to fill it?",
        [f"Half of the tank is {e1} litres.", f"The buckets hold {e2} litres.",
         f"Now the tank has {e3} litres.", f"So {e4} more litres are needed."],
        needed,
    )  # fmt: skip


@template
def flowers_quarter(d: Draw) -> Problem:
    p = d.person()
    flower, rows = d.pick(FLOWERS), d.num(2, 8)
    per = d.num(4, 12, 4) if rows % 4 else d.num(3, 12)
    e1, total = calc(rows, "*", per)
    e2, red = calc(total, "/", 4)
    e3, others = calc(total, "-", red)
    return Problem(
        f"{p.name} plants {rows} rows of {per} {flower} in {d.pick(GARDENS)}. A quarter of them are red. "
        f"How many {flower} are not red?",
        [f"{p.He} plants {e1} {flower}.", f"A quarter of them is {e2} red {flower}.",
         f"So {e3} {flower} are not red."],
        others,
    )  # fmt: skip


@template
def book_left(d: Draw) -> Problem:
    p = d.person()
    rate, hours = d.num(8, 25), d.num(2, 6)
    e1, read = calc(rate, "*", hours)
    pages = read + d.num(10, 150)
    e2, left = calc(pages, "-", read)
    return Problem(
        f"{p.name}'s book has {pages} pages. {p.He} reads {rate} pages an hour for {hours} hours. How many pages "
        f"does {p.he} still have to read?",
        [f"At {rate} pages per hour, {p.he} reads {e1} pages.", f"So {e2} pages are left to read."],
        left,
    )  # fmt: skip


def generate_split(size: int, seed: int, seen: set[str]) -> list[dict[str, Any]]:
    """``size`` rows from ``random.Random(seed)``, templates in turn, skipping questions in ``seen`` (updated)."""
    rng, rows, attempts = random.Random(seed), [], 0
    while len(rows) < size:
        if attempts >= 50 * size + 100:
            raise PrunelensError(f"dataset arith: could not draw {size} distinct questions with seed {seed}")
        function = TEMPLATES[attempts % len(TEMPLATES)]
        attempts += 1
        problem = function(Draw(rng))
        if problem.question in seen:
            continue
        seen.add(problem.question)
        reasoning, steps = "\n".join(problem.lines), len(problem.lines)
        rows.append({"question": problem.question, "reasoning": reasoning, "answer": str(problem.answer),
                     "steps": steps, "template": function.__name__})  # fmt: skip
    return rows


class Arith(GSM8K):
    """Generated word problems with GSM8K's prompt, answer segment and grading."""

    name = "arith"
    title = "Arith"
    raw_files = {}
    hub_repo = ""
    hub_config = None
    hub_splits = {}
    splits = {"train": SplitRule("train"), "dev": SplitRule("dev"), "test": SplitRule("test")}
    partitions = {}
    sizes = {"test": 500, "dev": 200, "train": 2000}  # generation order: later splits skip earlier questions
    seeds = {"test": 1, "dev": 2, "train": 3}

    def rows(self, raw_split, data_dir=None):
        """The generated rows of ``raw_split`` (``data_dir`` is not used)."""
        seen: set[str] = set()
        for split, size in self.sizes.items():
            rows = generate_split(size, self.seeds[split], seen)
            if split == raw_split:
                return rows
        raise PrunelensError(f"dataset arith: unknown split {raw_split!r} (known: {', '.join(self.sizes)})")

    def parse(self, row, raw_split, index):
        record_id = f"arith-{raw_split}-{index}"
        steps = require(row, "steps", record_id)
        if not isinstance(steps, int):
            raise BadRecordError(record_id, f"'steps' must be an integer, got {steps!r}")
        return Example(
            record_id,
            require(row, "question", record_id),
            str(require(row, "answer", record_id)),
            require(row, "reasoning", record_id),
            dataset=self.name,
            meta={"steps": steps, "template": require(row, "template", record_id)},
        )
