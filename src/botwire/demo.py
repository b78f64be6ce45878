"""The mission in one run: two calls from the same number, each in its own process.

Call 1 meets a new caller and stores what it learns. Call 2 runs in a new process (as it would
on the next day, after a deploy, or on another worker) and greets the caller with it. Nothing
is passed between the two processes except the botwire store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from . import Memory

PHONE = "+15555550123"
NAMESPACE = f"demo:caller:{PHONE}"


def _say(who: str, text: str) -> None:
    print(f"    [pid {os.getpid()}] {who:>6}: {text}", flush=True)


def call_one() -> None:
    with Memory(NAMESPACE) as memory:
        transcript = memory.log("transcript")
        name = memory.get("customer_name")
        _say(
            "agent",
            f"Thanks for calling! {'Welcome back, ' + name if name else 'Who am I speaking with?'}",
        )
        turns = [
            (
                "caller",
                "Hi, this is Ana. I ordered a blue kettle, ORDER-789, and it hasn't shipped.",
            ),
            ("agent", "Sorry about that, Ana. I've flagged ORDER-789 with the warehouse."),
            ("caller", "Thanks. Please text me rather than call."),
            ("agent", "Noted: text messages only. We'll be in touch."),
        ]
        for role, text in turns:
            _say(role, text)
        transcript.extend([{"role": r, "text": t} for r, t in turns])
        memory.set_many(
            {
                "customer_name": "Ana",
                "last_order": "ORDER-789",
                "preferences": {"contact": "sms"},
                "open_issue": "ORDER-789 not shipped; flagged with warehouse",
            }
        )
        memory.incr("calls")
        memory.log("calls").append(
            {
                "summary": "Ana asked about ORDER-789 (not shipped).",
                "outcome": "flagged",
                "ended_at": time.time(),
            }
        )
        _say("botwire", f"stored {memory.count()} facts and {len(transcript)} turns")


def call_two() -> None:
    with Memory(NAMESPACE) as memory:
        facts = memory.get_many(["customer_name", "last_order", "open_issue", "preferences"])
        last_call = memory.log("calls").read(last=1)
        calls = memory.get("calls", 0)
        _say("botwire", f"found {len(facts)} facts, {calls} earlier call(s)")
        if last_call:
            _say("botwire", f"last call: {last_call[0].value['summary']}")
        name = facts.get("customer_name")
        if name:
            _say(
                "agent",
                f"Welcome back, {name}! Are you calling about {facts['last_order']}? "
                f"Last time: {facts['open_issue']}.",
            )
        else:
            _say("agent", "Thanks for calling! Who am I speaking with?")
        memory.incr("calls")


def run() -> int:
    """Run the demo: reset the demo caller, then each call in a fresh Python process."""
    with Memory(NAMESPACE) as memory:
        location = memory.engine.url
        memory.clear()
        memory.log("transcript").clear()
        memory.log("calls").clear()
    print(f"botwire demo: memory lives in {location}\n")
    for title, step in (("Call 1", "one"), ("Call 2 (next day, new process)", "two")):
        print(f"{title}: {PHONE} rings in")
        done = subprocess.run([sys.executable, "-m", "botwire.demo", step], check=False)
        if done.returncode != 0:
            print(f"call {step} failed with exit code {done.returncode}", file=sys.stderr)
            return done.returncode
        print()
    with Memory(NAMESPACE) as memory:
        remembered = memory.get("customer_name") == "Ana" and memory.get("calls") == 2
    print(
        "The second call greeted the caller with what the first one stored."
        if remembered
        else "The second call did not find the first call's memory."
    )
    return 0 if remembered else 1


if __name__ == "__main__":
    steps = {"one": call_one, "two": call_two}
    if len(sys.argv) == 2 and sys.argv[1] in steps:
        steps[sys.argv[1]]()
    else:
        sys.exit(run())
