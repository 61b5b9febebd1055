"""Hostile input never ends in a traceback: exit 0 or 2 with one line, and no partial row.

Three hypothesis properties, all in-process (`dpsweep.cli.main`, no child processes):

- CLI numbers: `dpsweep train` number flags given nan, inf, 0, negatives, 1e-300, 1e300,
  2**70, words, empty strings, ...; the data path does not exist, so every case ends at a
  check (exit 2, one line) and the store it was given holds no row and no temp file;
- search-space YAML: the real schema's keys given wrong types, bools, lists, mappings,
  .inf, unicode, plus raw texts (duplicate keys, bad UTF-8): a SweepSpec, or ConfigError
  with one line; the preflight of `sweep --dry-run` (store, model limits) likewise;
- corpus files: labelled-CSV folders with random bytes, missing columns, BOMs, empty files,
  huge fields, non-UTF-8, labels outside {0, 1, blank}: `dpsweep data inspect` exits 0 or
  2 with one line.

Examples per property: the `dpsweep-reliability` profile below (DPSWEEP_PROPERTY_EXAMPLES
scales it); the number of cases run is printed at the end of the module and checked.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpsweep.cli import main
from dpsweep.errors import UserInputError
from dpsweep.settings import SETTINGS, TrialConfig, flag_name, setting_type
from dpsweep.sweep.commands import check_sweep_store
from dpsweep.sweep.spec import _SECTIONS, _section_keys, load_spec, spec_from_mapping

EXAMPLES = int(os.environ.get("DPSWEEP_PROPERTY_EXAMPLES", "150"))
settings.register_profile("dpsweep-reliability", max_examples=EXAMPLES, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = settings.get_profile("dpsweep-reliability")

CASES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _count_cases(request):
    """Print how many cases each property ran (the closing note reports them)."""
    yield
    line = "property cases run: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items()))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{line} (total {sum(CASES.values())})")


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refusing a flag
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _one_clean_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err


# ---- (a) CLI numbers --------------------------------------------------------------------------

NUMBER_FLAGS = tuple(flag_name(n) for n, s in SETTINGS.items()
                     if s.flag and setting_type(n) in (int, float))
HOSTILE_WORDS = ("nan", "NaN", "inf", "-inf", "+inf", "infinity", "0", "-0", "-1", "1e-300", "-1e-300", "1e300",
                 "1e309", str(2**70), str(-(2**70)), "4294967296", "1e-320", "0.5", "1.5", "abc", "", " ", "1e",
                 "0x10", "1_000", "１", "٣", "True", "none", "3 ", "1,5", "--", "-", "1/2", "1e+12")
number_text = st.one_of(
    st.sampled_from(HOSTILE_WORDS),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.text(max_size=8),
)


@pytest.fixture(scope="module")
def train_base(tmp_path_factory, tiny_model_dir) -> tuple[list[str], Path]:
    root = tmp_path_factory.mktemp("cli-numbers")
    store = root / "store"
    return (["train", "--dataset-format", "mimic-cxr", "--data-path", str(root / "no-data"), "--model",
             str(tiny_model_dir), "--store", str(store)], store)


@PROFILE
@given(values=st.dictionaries(st.sampled_from(NUMBER_FLAGS), number_text, min_size=1, max_size=3))
def test_train_numbers_end_in_one_line_and_no_row(train_base, values):
    base, store = train_base
    argv = [*base, *(f"--{flag}={value}" for flag, value in values.items())]
    code, _, err = _run(argv)
    CASES["train numbers"] += 1
    assert code == 2, err  # the data path does not exist: every case stops at a check
    _one_clean_line(err)
    leftovers = [p for p in store.rglob("*") if p.is_file()] if store.exists() else []
    assert not leftovers, leftovers  # no row, no probe, no temp file


@PROFILE
@given(flag=st.sampled_from(NUMBER_FLAGS), value=st.sampled_from(("-inf", "-1e300", "-", "--", "-x")))
def test_a_value_argparse_takes_for_a_flag_is_one_line(train_base, flag, value):
    """`--lr -inf` (not `--lr=-inf`): argparse's own refusal is one line too, not a usage page."""
    code, _, err = _run([*train_base[0], f"--{flag}", value])
    CASES["argparse refusals"] += 1
    assert code == 2, err
    _one_clean_line(err)


# A valid configuration's privacy numbers at their extremes: a step plan, or a one-line refusal.
# (Not the PRV accountant at millions of steps: its grid is capped at 30M points, which still
# takes GBs; see dpsweep.privacy.fastpath.PRV_MAX_GRID_POINTS.)
extreme = st.fixed_dictionaries({
    "epsilon": st.sampled_from([1e-300, 1e-3, 0.5, 8.0, 100.0, math.inf]),
    "delta": st.sampled_from([1e-300, 1e-12, 1e-5, 0.5]),
    "sigma": st.sampled_from([None, 1e-3, 0.01, 0.5, 1e4]),
    "max_epochs": st.sampled_from([1e-300, 0.3, 3.0, 100.0]),
    "batch_size": st.sampled_from([8, 64, 10**7]),
    "accountant": st.sampled_from(["prv", "rdp"]),
})


@settings(PROFILE, max_examples=max(10, EXAMPLES // 3))
@given(numbers=extreme, n_train=st.sampled_from([2, 160, 1000]))
def test_privacy_extremes_plan_or_refuse_in_one_line(numbers, n_train):
    from dpsweep.privacy import validate_privacy_args
    from dpsweep.train.plan import plan_steps

    CASES["privacy extremes"] += 1
    try:
        config = TrialConfig(data_path="unused", **numbers)
        validate_privacy_args(epsilon_target=config.epsilon, delta=config.delta, n_train=n_train,
                              sigma=config.sigma, clip=config.clip)
        plan = plan_steps(config, n_train=n_train)
    except UserInputError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    assert plan.steps >= 0 and (plan.feasible or plan.reason)


# ---- (b) search-space YAML ----------------------------------------------------------------------

def _space(data: Path, model: Path, store: Path) -> dict:
    return {"name": "prop", "dataset": {"format": "mimic-cxr", "path": str(data), "max_length": 32},
            "model": {"path": str(model), "lora_layers": 1},
            "privacy": {"epsilons": [3, 8, "inf"], "delta": 1e-5},
            "search": {"rank": {"dist": "choice", "values": [2, 4]},
                       "lr": {"dist": "loguniform", "low": 1e-3, "high": 1e-2},
                       "sigma": {"dist": "uniform", "low": 0.5, "high": 3.0}, "batch_size": 64},
            "training": {"physical_batch_size": 64}, "trials_per_target": 2,
            "sampler": {"name": "tpe", "seed": 0},
            "resources": {"workers_per_trial": 1, "cpus_per_worker": 1, "max_concurrent_trials": 2},
            "store": str(store)}


SCHEMA_KEYS = [(None, key) for key in _SECTIONS] + [
    (section, key) for section in ("dataset", "model", "privacy", "training") for key in _section_keys(section)
] + [("search", key) for key in ("rank", "lr", "clip", "sigma", "batch_size", "max_epochs", "lora_alpha")] + [
    ("resources", key) for key in ("workers_per_trial", "cpus_per_worker", "gpus_per_worker",
                                   "max_concurrent_trials")] + [("sampler", "name"), ("sampler", "seed")]

scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                   st.sampled_from(["inf", ".inf", "-1", "1e-300", "résumé", "a b", "", "0", "tpe", "choice",
                                    "loguniform", "mimic-cxr", "csv"]))
yaml_value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["dist", "low", "high", "values", "name", "seed", "x"]), inner, max_size=3)),
    max_leaves=6)


@pytest.fixture(scope="module")
def space_base(tmp_path_factory, tiny_model_dir) -> dict:
    root = tmp_path_factory.mktemp("spaces")
    return _space(root / "no-data", tiny_model_dir, root / "store")


def _spec_or_refusal(make) -> None:
    """A spec whose dry-run preflight passes or refuses in one line; else a one-line ConfigError."""
    try:
        spec = make()
        check_sweep_store(spec, name=None, create=False)
        from dpsweep.preflight import check_trial_model

        check_trial_model(spec.base, source=spec.source)
    except UserInputError as exc:
        assert "\n" not in str(exc) and str(exc).strip(), repr(str(exc))


@PROFILE
@given(edits=st.lists(st.tuples(st.sampled_from(SCHEMA_KEYS), yaml_value), min_size=1, max_size=3))
def test_search_space_mappings_are_a_spec_or_one_line(space_base, edits):
    space = yaml.safe_load(yaml.safe_dump(space_base))
    for (section, key), value in edits:
        if section is None:
            space[key] = value
        elif isinstance(space.get(section), dict):
            space[section][key] = value
    CASES["search-space mappings"] += 1
    _spec_or_refusal(lambda: spec_from_mapping(space, source="prop.yaml"))


RAW_TEXTS = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"name: a\nname: b\n", b"privacy: {epsilons: [1]}\nprivacy: {epsilons: [2]}\n",
                     b"search: {lr: .inf}\n", b"\xff\xfe\x00n\x00a\x00m\x00e", b"\xef\xbb\xbfname: x\n",
                     b"name: !!python/object:os.system echo\n", b"&a [*a]", b"- 1\n- 2\n", b"", b"~",
                     b"a: &x 1\nb: *x\n<<: {c: 2}\n", b"{" * 60, b"name: \"\\ud800\"\n"]),
)


@PROFILE
@given(raw=RAW_TEXTS, keep_base=st.booleans())
def test_raw_search_space_files_are_a_spec_or_one_line(space_base, tmp_path_factory, raw, keep_base):
    path = tmp_path_factory.mktemp("raw") / "space.yaml"
    head = yaml.safe_dump(space_base).encode() if keep_base else b""
    path.write_bytes(head + raw)
    CASES["search-space files"] += 1
    _spec_or_refusal(lambda: load_spec(path))


# ---- (c) corpus files ---------------------------------------------------------------------------

LABELS = ("Effusion", "Nodule")
cell = st.one_of(st.sampled_from(["0", "1", "", "-1", "2", "0.0", "1.0", " 1 ", "yes", "nan", "1e0", "\x00",
                                  "\"", "a,b", "line\nbreak", "é", "\ufeff1"]),
                 st.text(max_size=10), st.integers(min_value=-(2**70), max_value=2**70).map(str))
header = st.one_of(
    st.just(["id", "report_text", *LABELS]),
    st.lists(st.sampled_from(["id", "patient_id", "report_text", "text", "report", *LABELS, "", "id"]),
             min_size=0, max_size=5),
    st.lists(st.text(max_size=6), max_size=4),
)


def _csv_text(columns: list[str], rows: list[list[str]]) -> str:
    import csv

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


@st.composite
def corpus_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["table", "table", "table", "bytes", "huge"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    columns = draw(header)
    n = draw(st.integers(min_value=0, max_value=12))
    width = st.integers(min_value=max(0, len(columns) - 1), max_value=len(columns) + 1)
    rows = [[draw(cell) if j else f"row {i} words" for j in range(draw(width))] for i in range(n)]
    if kind == "huge" and rows and rows[0]:
        rows[0][0] = "x" * draw(st.sampled_from([10**5, 10**6]))
    text = _csv_text(columns, rows)
    prefix = draw(st.sampled_from(["", "\ufeff", "\ufeff\ufeff"]))
    data = (prefix + text).encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and data:  # a byte that is not UTF-8, somewhere
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data = data[:at] + b"\xff" + data[at:]
    return data


@PROFILE
@given(train=corpus_bytes(), val=st.none() | corpus_bytes(),
       columns=st.none() | st.sampled_from(["Effusion", "Effusion,Nodule", "missing", ","]))
def test_csv_corpora_are_read_or_refused_in_one_line(tmp_path_factory, train, val, columns):
    root = tmp_path_factory.mktemp("corpus") / "reports"
    root.mkdir()
    (root / "train.csv").write_bytes(train)
    if val is not None:
        (root / "val.csv").write_bytes(val)
    argv = ["data", "inspect", "--format", "csv", "--path", str(root)]
    if columns is not None:
        argv += ["--label-columns", columns]
    code, out, err = _run(argv)
    CASES["corpus files"] += 1
    assert code in (0, 2), err
    if code == 2:
        _one_clean_line(err)
    else:
        assert "n" in out and not err.strip(), err


# ---- the count itself -----------------------------------------------------------------------------

def test_every_property_ran_its_cases():
    """Runs last in this module: a property that silently ran no case would prove nothing."""
    wanted = {"train numbers", "argparse refusals", "privacy extremes", "search-space mappings",
              "search-space files", "corpus files"}
    assert wanted <= set(CASES) and min(CASES[k] for k in wanted) >= min(EXAMPLES, 10), dict(CASES)
