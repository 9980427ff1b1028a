"""The calculator tool: arithmetic parsed with an AST walk under limits on size, exponent and magnitude, never `eval`.

It accepts what an LM tends to write ("1234 x 5678", "1,234 × 5678", "1234 multiplied by 5678", "12% of 50",
"what is 2^10?") and answers integers without a trailing ".0".
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from pipeline.tools.base import ToolError, ToolResult, tool

MAX_LENGTH = 300
MAX_NODES = 200
MAX_EXPONENT = 1000
MAX_DIGITS = 100  # results beyond 10**100 are refused: nobody asks an agent for them, and they cost time to print

Number = int | float

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}

# Words and symbols an LM writes for operators, applied in order (longer phrases first).
_PHRASES = [
    (r"\bto the power of\b|\braised to(?: the power of)?\b", "**"),
    (r"\bmultiplied by\b|\btimes\b", "*"),
    (r"\bdivided by\b|\bover\b", "/"),
    (r"\bplus\b|\badded to\b", "+"),
    (r"\bminus\b", "-"),
    (r"\bmod(?:ulo)?\b", "%"),
    (r"\bsquare root of\b", "sqrt"),
]
_SYMBOLS = str.maketrans({"×": "*", "·": "*", "∙": "*", "÷": "/", "−": "-", "–": "-", "^": "**", "√": "sqrt"})
_PREFIX = re.compile(
    r"^(?:please\s+)?(?:what\s+is|what's|whats|how\s+much\s+is|calculate|compute|evaluate|solve)\s*:?\s*"
    r"(?:the\s+)?(?:result|value|answer)?\s*(?:of\s+)?",
    re.IGNORECASE,
)


def evaluate(expression: str) -> Number:
    """The value of `expression`; a ToolError that says what to change when it is not plain arithmetic."""
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("the expression is empty; give arithmetic such as '1234 * 5678'")
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"the expression is {len(expression)} characters long; the limit is {MAX_LENGTH}")
    text = normalise(expression)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot read {expression.strip()!r} as arithmetic; write numbers and + - * / ** ( ), "
                        "for example '(12 + 3) * 4'") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ToolError(f"the expression has {nodes} parts; the limit is {MAX_NODES}: split it into smaller steps")
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError(f"the result is too large (limit 10**{MAX_DIGITS})") from None
    except (TypeError, ValueError) as exc:
        raise ToolError(f"cannot compute {expression.strip()!r}: {exc}") from None
    return _checked(value)


def normalise(expression: str) -> str:
    """Rewrite an LM's lenient arithmetic into Python syntax: operator words and symbols, thousands separators,
    'N% of X', currency signs, a leading 'what is' or 'expression=' and a trailing '?' or '='."""
    text = " ".join(expression.split()).translate(_SYMBOLS)
    text = re.sub(r"^\s*expression\s*[:=]\s*", "", text, flags=re.IGNORECASE)  # an argument name left in
    text = re.sub(r"[$€£¥]|\b(?:usd|eur|gbp)\b", "", text, flags=re.IGNORECASE)
    text = _PREFIX.sub("", text).strip()
    text = text.rstrip("?.!= ").strip()
    for pattern, replacement in _PHRASES:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    text = re.sub(r"(\d+(?:\.\d+)?)\s*%\s*of\b", r"(\1/100)*", text, flags=re.IGNORECASE)
    text = re.sub(r"(?<=[\d)])\s*[xX]\s*(?=[\d(.])", " * ", text)
    if not re.search(r"[A-Za-z_]\w*\s*\(", text):  # "max(1,234)" keeps its comma; "1,234 * 5" drops it
        text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    return text


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ToolError(f"only numbers are allowed, not {node.value!r}")
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ToolError(f"unknown name {node.id!r}; only numbers, pi and e are allowed")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _eval(node.operand)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        if isinstance(node.op, ast.Div):
            return _divide(left, right)
        operation = _BINARY.get(type(node.op))
        if operation is None:
            raise ToolError(f"the operator {type(node.op).__name__} is not supported; use + - * / // % **")
        return _checked(operation(left, right))
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _FUNCTIONS or node.keywords:
            allowed = ", ".join(_FUNCTIONS)
            raise ToolError(f"only these functions are allowed: {allowed} (positional arguments only)")
        args = [_eval(arg) for arg in node.args]
        if not args:
            raise ToolError(f"{name}() needs at least one number")
        if name == "round" and len(args) == 2:
            args[1] = int(args[1])
        return _checked(_FUNCTIONS[name](*args))
    raise ToolError(f"{ast.unparse(node)!r} is not arithmetic; use numbers, + - * / // % ** and parentheses")


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"the exponent {exponent:g} is too large; the limit is {MAX_EXPONENT}")
    if abs(base) > 1 and exponent > 0 and exponent * math.log10(abs(base)) > MAX_DIGITS:
        raise ToolError(f"the result is too large (limit 10**{MAX_DIGITS})")
    if base == 0 and exponent < 0:
        raise ZeroDivisionError
    result = base**exponent
    if isinstance(result, complex):
        raise ToolError("a fractional power of a negative number has no real value")
    return _checked(result)


def _divide(left: Number, right: Number) -> Number:
    if right == 0:
        raise ZeroDivisionError
    if isinstance(left, int) and isinstance(right, int) and left % right == 0:
        return left // right  # exact: 7006652 / 2 stays an int
    return left / right


def _checked(value: Number) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("the result is not a finite number")
    if abs(value) >= 10**MAX_DIGITS:
        raise ToolError(f"the result is too large (limit 10**{MAX_DIGITS})")
    return value


def format_number(value: Number) -> str:
    """7006652 not 7006652.0; other floats to 12 significant digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return format(value, ".12g")
    return str(value)


@tool(timeout_s=5.0)
def calculator(expression: str) -> ToolResult:
    """Evaluate an arithmetic expression (numbers, + - * / // % **, parentheses, abs, round, min, max, sqrt).

    Args:
        expression: the arithmetic to compute, for example "1234 * 5678" or "(120 - 15) / 7".
    """
    value = evaluate(expression)
    return ToolResult(format_number(value), data=value)
