"""Generate the synthetic customer-support traces in this directory.

Deterministic given the seed: ``python examples/make_examples.py`` rewrites
``traces.jsonl`` (2,200 rows) and ``holdout.jsonl`` (500 rows) byte for byte.
Every text comes from the templates below; nothing is copied from a dataset.

The ``teacher`` field simulates an LLM: it returns the gold ``label`` most of
the time, confuses intents that really are close (a replacement card that
never arrived: lost card or late delivery?) on the templates marked ambiguous,
and makes a small amount of unpatterned noise everywhere else.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 20251123
N_TRACES, N_HOLDOUT = 2200, 500
BASE_NOISE = 0.005  # chance that the teacher confuses any request with a neighbour
AMBIGUOUS_WEIGHT = 0.25  # traffic weight of an ambiguous template relative to a clear one

# intent -> (traffic share, [(template, {confused intent: probability})])
INTENTS: dict[str, tuple[float, list[tuple[str, dict[str, float]]]]] = {
    "card_lost": (0.09, [
        ("I lost my {card} {where}.", {}),
        ("My {card} was stolen {where}, please block it.", {}),
        ("I can't find my {card} anywhere, can you freeze it?", {}),
        ("someone took my wallet with my {card} in it.", {}),
        ("how do I report a lost {card}?", {}),
        ("I think I left my {card} {where}.", {}),
        ("the replacement {card} you mailed me {days} ago never arrived.", {"delivery_delay": 0.35}),
        ("there are payments I don't recognise, I think my {card} details were stolen.",
         {"billing_question": 0.3}),
    ]),
    "refund_status": (0.14, [
        ("where is my refund for order {order}?", {}),
        ("I returned the {item} {days} ago and still have no refund.", {}),
        ("when will I get my money back for the {item}?", {}),
        ("has my refund of {amount} been processed yet?", {}),
        ("I was promised a refund {days} ago, what is going on?", {"complaint": 0.3}),
        ("I was charged {amount} after returning the {item}, can you check?", {"billing_question": 0.35}),
    ]),
    "change_address": (0.08, [
        ("I moved, how do I update my address?", {}),
        ("please change my shipping address to {street}.", {}),
        ("can I change the delivery address for order {order}?", {"delivery_delay": 0.2}),
        ("update my billing address to {street}.", {"billing_question": 0.25}),
        ("I need to update my home address on my account.", {}),
        ("my address is wrong on my profile, it should be {street}.", {}),
    ]),
    "cancel_subscription": (0.09, [
        ("I want to cancel my {service}.", {}),
        ("how do I stop my {plan} {service} from renewing?", {}),
        ("please close my account and stop charging me.", {"billing_question": 0.2}),
        ("cancel my {plan} plan from {month}.", {}),
        ("I'd like to downgrade or cancel, the {plan} plan is too expensive.", {"upgrade_plan": 0.35}),
        ("end my {service}, I no longer use it.", {}),
    ]),
    "billing_question": (0.12, [
        ("why was I charged {amount} on {month} {day}?", {}),
        ("I don't understand the {amount} fee on my bill.", {}),
        ("can you explain my latest invoice?", {}),
        ("I was charged twice for my {plan} plan this month.", {"refund_status": 0.3}),
        ("when is my next payment due?", {}),
        ("which payment methods can I use for my {service}?", {}),
    ]),
    "password_reset": (0.11, [
        ("I forgot my password.", {}),
        ("how do I reset my password?", {}),
        ("the password reset link you sent me doesn't work.", {"complaint": 0.1}),
        ("I can't log in to my account.", {"other": 0.3}),
        ("my account is locked after too many login attempts.", {"other": 0.25}),
        ("I never got the password reset email.", {"delivery_delay": 0.15}),
    ]),
    "delivery_delay": (0.15, [
        ("my {item} still hasn't arrived.", {}),
        ("order {order} was supposed to arrive {days} ago.", {}),
        ("where is my package, tracking hasn't updated in {days}", {}),
        ("the delivery is late again, this is the third time.", {"complaint": 0.35}),
        ("when will order {order} be delivered?", {}),
        ("the courier says delivered but I never got my {item}.", {"refund_status": 0.2}),
    ]),
    "upgrade_plan": (0.07, [
        ("I want to upgrade to the {plan} plan.", {}),
        ("how much is the {plan} plan per month?", {"billing_question": 0.3}),
        ("can I switch from {plan} to {plan2}?", {"cancel_subscription": 0.15}),
        ("what extra features do I get with {plan}?", {}),
        ("upgrade my account to {plan} please.", {}),
    ]),
    "complaint": (0.08, [
        ("your customer service is terrible.", {}),
        ("I've been waiting {days} for a reply, this is unacceptable.", {}),
        ("I am very unhappy with the {item} I received.", {"refund_status": 0.3}),
        ("the app keeps crashing and nobody helps.", {"other": 0.3}),
        ("I want to speak to a manager about how I was treated.", {}),
        ("worst experience ever with your support team.", {}),
    ]),
    "other": (0.07, [
        ("what are your opening hours?", {}),
        ("do you have a store in {city}?", {}),
        ("can I talk to a human?", {"complaint": 0.4}),
        ("how do I use the app on my tablet?", {}),
        ("do you ship to {country}?", {"delivery_delay": 0.3}),
        ("is there a student discount?", {"upgrade_plan": 0.35}),
    ]),
}

# Unpatterned noise goes to a plausible neighbour.
NEIGHBOURS = {
    "card_lost": ["delivery_delay", "billing_question", "other"],
    "refund_status": ["billing_question", "complaint", "delivery_delay"],
    "change_address": ["delivery_delay", "other"],
    "cancel_subscription": ["upgrade_plan", "billing_question", "complaint"],
    "billing_question": ["refund_status", "upgrade_plan", "other"],
    "password_reset": ["other", "complaint"],
    "delivery_delay": ["complaint", "refund_status", "change_address"],
    "upgrade_plan": ["billing_question", "cancel_subscription", "other"],
    "complaint": ["refund_status", "other", "delivery_delay"],
    "other": ["complaint", "password_reset", "upgrade_plan"],
}

FILLERS = {
    "card": ["card", "debit card", "credit card", "bank card", "Visa card", "Mastercard"],
    "where": ["at the mall", "on the train", "at a restaurant", "while travelling", "at the gym",
              "last night", "this morning", "on holiday", "at the airport", "in a taxi"],
    "item": ["order", "package", "parcel", "headphones", "blender", "running shoes",
             "laptop stand", "books", "coffee machine", "winter jacket", "phone case"],
    "days": ["3 days", "a week", "two weeks", "10 days", "over a month", "five days", "a fortnight"],
    "plan": ["basic", "premium", "pro", "family", "student", "business"],
    "service": ["subscription", "membership", "plan", "account", "monthly box", "streaming plan"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"],
    "city": ["Leeds", "Lyon", "Porto", "Denver", "Osaka", "Toronto", "Glasgow", "Austin"],
    "country": ["Canada", "Ireland", "Norway", "Mexico", "Australia", "Japan", "Portugal"],
    "street_name": ["Oak", "Mill", "Station", "Church", "Park", "High", "Elm", "Victoria"],
    "street_kind": ["Street", "Road", "Lane", "Avenue", "Close"],
}
PREFIXES = ["", "", "", "Hi, ", "Hello, ", "Hey, ", "Good morning. ", "Quick question: ", "Urgent: "]
SUFFIXES = ["", "", "", " Thanks.", " Thank you!", " Please help.", " asap"]


def _fill(rng: random.Random, template: str) -> str:
    plan, plan2 = rng.sample(FILLERS["plan"], 2)
    values = {key: rng.choice(options) for key, options in FILLERS.items()}
    values.update(
        plan=plan, plan2=plan2, day=rng.randint(1, 28),
        order=f"#{rng.randint(10000, 99999)}",
        amount=f"${rng.randint(5, 300)}.{rng.choice(['00', '49', '99'])}",
        street=f"{rng.randint(1, 250)} {values['street_name']} {values['street_kind']}",
    )
    text = template.format(**values)
    if rng.random() < 0.25:  # people often skip the final punctuation
        text = text.rstrip(".?")
    prefix = rng.choice(PREFIXES)
    if not prefix.endswith(", ") or text.startswith(("I ", "I'")):
        text = text[0].upper() + text[1:]
    text = prefix + text + rng.choice(SUFFIXES)
    return text.lower() if rng.random() < 0.2 else text


def _teacher(rng: random.Random, gold: str, confusions: dict[str, float]) -> str:
    u = rng.random()
    for intent, p in confusions.items():
        if u < p:
            return intent
        u -= p
    return rng.choice(NEIGHBOURS[gold]) if rng.random() < BASE_NOISE else gold


def generate(seed: int = SEED, n: int = N_TRACES + N_HOLDOUT) -> list[dict]:
    """``n`` records with unique texts: ``{"input", "teacher", "label"}``."""
    rng = random.Random(seed)
    names = list(INTENTS)
    shares = [INTENTS[k][0] for k in names]
    seen: set[str] = set()
    rows = []
    while len(rows) < n:
        gold = rng.choices(names, weights=shares)[0]
        templates = INTENTS[gold][1]
        weights = [AMBIGUOUS_WEIGHT if c else 1.0 for _, c in templates]
        template, confusions = rng.choices(templates, weights=weights)[0]
        text = _fill(rng, template)
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        rows.append({"input": text, "teacher": _teacher(rng, gold, confusions), "label": gold})
    return rows


def write(out_dir: Path, seed: int = SEED) -> dict[str, float]:
    """Write ``traces.jsonl`` and ``holdout.jsonl``; return each file's teacher accuracy."""
    rows = generate(seed)
    stats = {}
    for name, prefix, part in (("traces.jsonl", "t", rows[:N_TRACES]),
                               ("holdout.jsonl", "h", rows[N_TRACES:])):
        lines = [json.dumps({"id": f"{prefix}{i:05d}", **r}, ensure_ascii=False)
                 for i, r in enumerate(part, start=1)]
        (out_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
        stats[name] = sum(r["teacher"] == r["label"] for r in part) / len(part)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    for name, acc in write(args.out, args.seed).items():
        print(f"{args.out / name}: teacher agrees with the gold label on {acc:.1%}")


if __name__ == "__main__":
    main()
