"""A validator plugin in Python (world `validator-plugin` of `sop:plugin@0.1.0`).

Accepts a write only if its value is UTF-8 text holding a decimal number >= 0, written as
digits with an optional fraction ("12", "0.5"; no sign, exponent, spaces, "inf" or "nan").
Removes always pass. A rejection carries one reason per bad write, naming its store and key.

Build: `plugins/polyglot/build.sh` (componentize-py -w validator-plugin componentize app).
"""

import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.validator import Mutation, Op

DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def problem(m: Mutation) -> str | None:
    """Why the write `m` is refused, or None if it is fine."""
    if m.op == Op.REMOVE:
        return None
    if m.value is None:
        return "a put without a value"
    try:
        text = m.value.decode("utf-8")
    except UnicodeDecodeError:
        return "the value is not UTF-8 text"
    if DECIMAL.fullmatch(text) is None:
        return f"the value {text[:40]!r} is not a decimal number >= 0"
    return None


class Validator(exports.Validator):
    def validate(self, batch: list[Mutation]) -> None:
        reasons = [
            f"store {m.store!r}, key {m.key.decode('utf-8', 'replace')!r}: {p}"
            for m in batch
            if (p := problem(m)) is not None
        ]
        if reasons:
            raise Err(reasons)
