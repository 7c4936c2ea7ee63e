"""Every command the READMEs print parses and configures as printed (no training: each plugin run
is checked up to its Config, which validates every key and value before any data is loaded)."""

import argparse
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from recbole_diffusion.config import Config
from recbole_diffusion.config.arguments import parse_command_line
from recbole_diffusion.data import convert
from recbole_diffusion.data.convert import benchmark_yaml, sequence_yaml
from recbole_diffusion.quick_start.compare import plan, read_model_config
from recbole_diffusion.quick_start.tune import check_space_keys, load_search_space

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
ENTRY = "run_recbole_diffusion.py"
CONVERT = "recbole_diffusion.data.convert"
SHARED = "../shared/data/"


def bash_commands(path):
    """The commands of a markdown file's ```bash blocks (comments dropped, one per line)."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def converted_configs(commands, scratch):
    """{the config path a convert command writes: a stand-in with the same contents}."""
    made = {}
    for command in commands:
        words = shlex.split(command)
        if CONVERT not in words:
            continue
        kind, out_dir = words[words.index(CONVERT) + 1], words[words.index(CONVERT) + 3]
        name = "ml-1m-diffrec" if kind == "diffrec" else "zhihu-dreamrec"
        text = benchmark_yaml(str(scratch), name) if kind == "diffrec" else sequence_yaml(str(scratch), name, 10)
        stand_in = scratch / f"{name}.yaml"
        stand_in.write_text(text)
        made[f"{out_dir}/{name}/{name}.yaml"] = str(stand_in)
    return made


class Parsed(Exception):
    """Raised where a script has parsed its command line: the arguments none of its options took,
    and whether it asked for them (``parse_known_args``) or not (``parse_args`` refuses them)."""


def parsed_flags(script, argv, monkeypatch):
    """Run ``script`` as ``__main__`` on ``argv`` up to its argparse parse; returns ``(the unparsed
    rest, whether the script takes such a rest)``."""
    parse = argparse.ArgumentParser.parse_known_args

    def stop_after(takes_rest):
        def parse_then_stop(self, args=None, namespace=None):
            raise Parsed(parse(self, args, namespace)[1], takes_rest)

        return parse_then_stop

    with monkeypatch.context() as patch, pytest.raises(Parsed) as parsed:
        patch.setattr(argparse.ArgumentParser, "parse_known_args", stop_after(True))
        patch.setattr(argparse.ArgumentParser, "parse_args", stop_after(False))
        patch.setattr(sys, "argv", [str(script), *argv])
        patch.syspath_prepend(str(script.parent))  # a script imports its sibling modules
        runpy.run_path(str(script), run_name="__main__")
    return parsed.value.args


COMMANDS = [(path.relative_to(ROOT).as_posix(), command) for path in DOCUMENTS for command in bash_commands(path)]


def test_the_readmes_have_commands():
    runs = [command for _, command in COMMANDS if ENTRY in command]
    assert len(runs) >= 10 and any("--compare=" in c for c in runs) and any("--tune=" in c for c in runs)


@pytest.mark.parametrize("document, command", COMMANDS, ids=[f"{d}:{i}" for i, (d, _) in enumerate(COMMANDS)])
def test_command_runs_as_printed(document, command, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    words = shlex.split(command)
    if words[0] == "python3" or "pip" in words:
        assert "venv" in command or "pip install" in command  # the install lines: CI runs them
        return
    assert words[0] == "python", command
    if words[1:3] == ["-m", CONVERT]:  # parsed by the converter's own main, which then converts nothing
        converted = []
        for name in ("diffrec_to_atomic", "dreamrec_to_atomic"):
            monkeypatch.setattr(convert, name, lambda *args, **kwargs: converted.append(args) or "converted.yaml")
        assert convert.main(words[3:]) == 0 and len(converted) == 1, command
        return
    script = ROOT / words[1]
    assert script.is_file(), f"{document}: {words[1]} does not exist"
    if words[1] != ENTRY:  # a benchmark script: its own flags must parse (it stops there)
        extras, takes_rest = parsed_flags(script, words[2:], monkeypatch)
        if extras:  # only a script that reads --key=value config overrides takes flags of no option of its own
            assert takes_rest, f"{document}: {command}: unknown {extras}"
            parse_command_line(extras)
        return
    args, overrides = parse_command_line(words[2:])
    if args.recommend:  # reads a checkpoint a printed training command writes
        assert any(f"--checkpoint_dir={args.recommend}" in other for _, other in COMMANDS), command
        return
    for key, value in overrides.items():  # the project's shared data (../shared/data) is not in every clone
        if key.endswith("_path") and isinstance(value, str) and value.startswith(SHARED) and not Path(value).exists():
            overrides[key] = str(tmp_path / Path(value).name)
            Path(overrides[key]).touch()
    stand_ins = converted_configs([c for _, c in COMMANDS], tmp_path)
    files = [stand_ins.get(path, path) for path in args.config_file_list or []]
    for path in files:
        assert Path(path).is_file(), f"{document}: config file {path} neither exists nor is written by a command printed there"
    if args.tune:
        spec = load_search_space(args.tune)
        check_space_keys(spec, args.tune, args.model, args.dataset, files, {**(spec.get("config") or {}), **overrides})
    elif args.compare:
        models = args.compare.split(",")
        model_config = read_model_config(args.model_config, models) if args.model_config else {}
        plan(models, args.dataset, files, overrides, model_config)  # every model's Config, as --compare builds them
    else:
        Config(model=args.model, dataset=args.dataset, config_file_list=files, config_dict=overrides)
