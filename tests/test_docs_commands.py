"""Every `bertjax COMMAND --flag` written in README.md and docs/*.md names a command and flags
that exist, and every `--config.FIELD` a field of that command's config: the documented
commands are what users copy, and a renamed flag must not leave them behind."""

import itertools
import re
import shlex
from pathlib import Path

import pytest

from bertjax import config as base_config
from bertjax.commands import COMMANDS, DEBUG_FLAG, FINETUNE_CONFIG
from bertjax.config import load_config as load_config_file

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_BLOCK = re.compile(r"^```(?!python)[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# `bertjax COMMAND` at the start of a shell command (after VAR=value assignments, ;, && or |).
INVOCATION = re.compile(r"(^|[;&|])\s*(\w+=\S*\s+)*(\S*/)?bertjax [a-z]")
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ">", ">>", "<"}
ASSIGNMENT = re.compile(r"\w+=\S*")  # VAR=value before a command
ABSL_FLAGS = {"help", "helpfull", "flagfile"}


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(document, command, arguments) of every `bertjax COMMAND ...` in a code block."""
    found = []
    for document in DOCUMENTS:
        for block in CODE_BLOCK.findall(document.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                if not INVOCATION.search(line):
                    continue
                lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
                lexer.whitespace_split, lexer.commenters = True, "#"
                words = list(lexer)
                for i, word in enumerate(words[:-1]):
                    before = [w for w in words[:i] if not ASSIGNMENT.fullmatch(w)]
                    at_command = not before or before[-1] in SEPARATORS  # not `cd ~/bertjax`
                    if at_command and Path(word).name == "bertjax" and words[i + 1].islower():
                        arguments = itertools.takewhile(
                            lambda w: w not in SEPARATORS, words[i + 2 :]
                        )
                        found.append((document.name, words[i + 1], list(arguments)))
    return found


def flag_names(command: str) -> set[str]:
    specs = COMMANDS[command].flags
    specs = specs() if callable(specs) else specs
    names = {name for _, name, _, _ in [*specs, DEBUG_FLAG]}
    bools = {name for kind, name, _, _ in [*specs, DEBUG_FLAG] if kind == "bool"}
    return names | {f"no{name}" for name in bools} | ABSL_FLAGS


def config_fields(command: str, arguments: list[str]) -> set[str]:
    if command == "finetune":
        return set(load_config_file(Path(FINETUNE_CONFIG)).keys())
    given = [a.split("=", 1)[1].split(":") for a in arguments if a.startswith("--config=")]
    path = ROOT / given[0][0] if given else None
    if path is None or not path.is_file():  # a placeholder such as CONFIG.py
        return set(base_config.defaults().keys())
    if path.name == "continue_from.py":  # a run's own config.json: the defaults' fields
        return set(base_config.defaults().keys())
    config = load_config_file(path, *given[0][1:])
    return set(config.keys())


COMMAND_LINES = documented_commands()


def test_the_documents_show_every_command():
    assert {command for _, command, _ in COMMAND_LINES} >= set(COMMANDS)


@pytest.mark.parametrize(
    "document, command, arguments", COMMAND_LINES, ids=[f"{d}:{c}" for d, c, _ in COMMAND_LINES]
)
def test_a_documented_command_uses_flags_that_exist(document, command, arguments):
    assert command in COMMANDS, f"{document}: no command `bertjax {command}`"
    names, fields = flag_names(command), None
    for argument in arguments:
        if not argument.startswith("--"):
            continue
        name = argument[2:].split("=", 1)[0]
        if name.startswith("config."):
            fields = fields or config_fields(command, arguments)
            field = name.removeprefix("config.").split(".")[0]
            assert field in fields, f"{document}: `bertjax {command}` has no --config.{field}"
        else:
            assert name in names, f"{document}: `bertjax {command}` has no --{name}"
