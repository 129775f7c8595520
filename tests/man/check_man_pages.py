#!/usr/bin/env python3
"""Checks the man pages in docs/man against the programs they describe.

  check_man_pages.py options MOBIKED MOBIKECTL PAGES_DIR
      The options of `mobiked --help` are exactly those in mobiked.8's OPTIONS; the
      commands of `mobikectl --help` (and `mobikectl cluster --help`) are exactly the
      entries of mobikectl.8's COMMANDS, each entry naming exactly the options and
      arguments of that command's --help; mobikectl's global options are those of its
      OPTIONS section.
  check_man_pages.py lint PAGES_DIR
      groff (and mandoc, if installed) find nothing to warn about in any page.
      Exit 77 (ctest's "skipped") when groff is not installed.

The help texts come from running the built binaries, so a flag added to the code without
a line in the page (or the other way round) fails here.
"""
import os
import re
import shutil
import subprocess
import sys

SKIP = 77


def run_help(*argv):
    out = subprocess.run(list(argv) + ["--help"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        sys.exit(f"{' '.join(argv)} --help exited {out.returncode}: {out.stderr}")
    return out.stdout


def help_sections(text):
    """{"Options": [lines], "Positionals": [...], "Subcommands": [...]} of a CLI11 help text."""
    sections, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^([A-Z][A-Za-z ]*):\s*$", line)
        if m:
            current = m.group(1).strip().lower()
            sections[current] = []
        elif current and line.strip():
            sections[current].append(line)
    return sections


def help_options(text, drop_help=False):
    """Long options of a help text. A command's --help is documented once, among the
    global options, so drop_help leaves it out."""
    names = set()
    for line in help_sections(text).get("options", []):
        m = re.match(r"^\s+(-\S.*?)(\s{2,}|$)", line)
        if m:
            names.update(re.findall(r"--[a-z][a-z0-9-]*", m.group(1)))
    if drop_help:
        names.discard("--help")
    return names


def help_positionals(text):
    return {line.split()[0] for line in help_sections(text).get("positionals", []) if re.match(r"^\s{1,4}\S", line)}


def help_subcommands(text):
    return [line.split()[0] for line in help_sections(text).get("subcommands", []) if re.match(r"^\s{1,4}\S", line)]


def plain(roff):
    """Text of a roff line without font escapes, with \\- as -."""
    roff = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", roff)
    return roff.replace("\\-", "-").replace("\\&", "")


def page_section(path, title):
    """The lines of section .SH TITLE of a page."""
    lines, inside = [], False
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if line.startswith(".SH "):
                inside = line[4:].strip().strip('"') == title
            elif inside:
                lines.append(line)
    if not lines:
        sys.exit(f"{path}: no section {title}")
    return lines


def tp_entries(lines):
    """[(tag line, [body lines])] of the .TP entries in lines."""
    entries, i = [], 0
    while i < len(lines):
        if lines[i] == ".TP" and i + 1 < len(lines):
            tag, body, i = lines[i + 1], [], i + 2
            while i < len(lines) and lines[i] not in (".TP", ".PP"):
                body.append(lines[i])
                i += 1
            entries.append((tag, body))
        else:
            i += 1
    return entries


def long_options(roff_lines):
    return set(re.findall(r"--[a-z][a-z0-9-]*", " ".join(plain(l) for l in roff_lines)))


def compare(what, in_code, in_page, problems):
    for name in sorted(in_code - in_page):
        problems.append(f"{what}: {name} is in --help but not in the man page")
    for name in sorted(in_page - in_code):
        problems.append(f"{what}: the man page documents {name}, which --help does not know")


def check_options(mobiked, mobikectl, pages):
    problems = []
    # mobiked: OPTIONS tags against --help.
    mobiked_page = os.path.join(pages, "mobiked.8")
    tags = [tag for tag, _ in tp_entries(page_section(mobiked_page, "OPTIONS"))]
    compare("mobiked.8 OPTIONS", help_options(run_help(mobiked)), long_options(tags), problems)

    # mobikectl: global options, then one COMMANDS entry (or more) per command.
    ctl_page = os.path.join(pages, "mobikectl.8")
    top = run_help(mobikectl)
    tags = [tag for tag, _ in tp_entries(page_section(ctl_page, "OPTIONS"))]
    compare("mobikectl.8 OPTIONS", help_options(top), long_options(tags), problems)

    commands = {}  # "cluster drain" -> help text
    for sub in help_subcommands(top):
        text = run_help(mobikectl, sub)
        nested = help_subcommands(text)
        if nested:
            for n in nested:
                commands[f"{sub} {n}"] = run_help(mobikectl, sub, n)
        else:
            commands[sub] = text
    if not commands:
        problems.append("mobikectl --help lists no commands (has its format changed?)")

    documented = {}  # command -> (tag words, options)
    for tag, _ in tp_entries(page_section(ctl_page, "COMMANDS")):
        words = plain(tag).split()
        name = next((c for c in sorted(commands, key=len, reverse=True)
                     if words[: len(c.split())] == c.split()), None)
        if name is None:
            problems.append(f"mobikectl.8 COMMANDS documents '{plain(tag)}', which is no mobikectl command")
            continue
        opts, args = documented.setdefault(name, (set(), set()))
        opts |= long_options([tag])
        args |= set(re.findall(r"\\fI([a-z][a-z_-]*)\\f", tag))
    for name, text in sorted(commands.items()):
        if name not in documented:
            problems.append(f"mobikectl.8 COMMANDS: '{name}' is a mobikectl command but not documented")
            continue
        opts, args = documented[name]
        compare(f"mobikectl.8 COMMANDS '{name}'", help_options(text, drop_help=True), opts, problems)
        # Each positional argument appears in italics on the tag line.
        for p in sorted(help_positionals(text) - args):
            problems.append(f"mobikectl.8 COMMANDS '{name}': argument '{p}' is not on the entry's first line")
    return problems


def check_lint(pages):
    groff = shutil.which("groff")
    if not groff:
        print("SKIP: groff is not installed (Debian: groff-base)")
        sys.exit(SKIP)
    problems = []
    files = sorted(os.path.join(pages, f) for f in os.listdir(pages) if re.search(r"\.[1-8]$", f))
    if not files:
        problems.append(f"no man pages in {pages}")
    for page in files:
        # -ww: every warning; -z: format but print nothing. Any message is a problem.
        out = subprocess.run([groff, "-man", "-ww", "-z", "-Tutf8", page], capture_output=True, text=True)
        for line in (out.stderr.splitlines() or ([f"groff exited {out.returncode}"] if out.returncode else [])):
            problems.append(f"groff: {line}")
        mandoc = shutil.which("mandoc")
        if mandoc:
            out = subprocess.run([mandoc, "-T", "lint", "-W", "warning", page], capture_output=True, text=True)
            problems += [f"mandoc: {line}" for line in (out.stdout + out.stderr).splitlines()]
        else:
            print(f"note: mandoc not installed, {os.path.basename(page)} checked with groff only")
    return problems


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "options":
        problems = check_options(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "lint":
        problems = check_lint(sys.argv[2])
    else:
        sys.exit(__doc__)
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
