"""`ksl`: the command line. Each command is wiring only; the logic lives in the modules it calls.

The pipeline stages themselves are the scripts in stages/ (what dvc.yaml runs); `ksl` adds the
commands a researcher types by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from kslottery.params import ParamsError, load_params


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """KS-Lottery: find and train the few token-embedding rows that carry a multilingual transfer."""


@main.command()
@click.argument("params_path", default="params.yaml", type=click.Path())
@click.option("--no-model-check", is_flag=True, help="Skip the check that the model source exists.")
def validate(params_path, no_model_check):
    """Check a params file; name every bad key, its value and the fix."""
    try:
        params = load_params(params_path, check_model=not no_model_check)
    except ParamsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{params_path}: valid ({len(params.pairs)} pair(s): {', '.join(params.pairs)}; alpha {params.alpha})")


@main.command()
@click.option("--eval-dir", default="metrics/eval", show_default=True, type=click.Path(exists=True))
@click.option("--certify-dir", default="metrics/certify", show_default=True, type=click.Path())
@click.option("--ks-dir", default="metrics/ks", show_default=True, type=click.Path())
def table(eval_dir, certify_dir, ks_dir):
    """Print the comparison table (with certification and ticket overlaps) from the committed metrics."""
    from kslottery.report import report_markdown

    def present(directory):
        return directory if Path(directory).is_dir() else None

    click.echo(report_markdown(eval_dir, present(certify_dir), present(ks_dir))[1])


@main.command()
@click.option("--repo", default=".", show_default=True, type=click.Path(exists=True, file_okay=False),
              help="The DVC project whose experiments to compare.")
@click.option("--exp-json", type=click.Path(exists=True, dir_okay=False),
              help="Read a saved `dvc exp show --json` instead of running it.")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Where experiments.md (and alpha_sweep.png, if alpha was swept) go.")
def experiments(repo, exp_json, out):
    """Compare `dvc exp run` experiments: swept params vs tickets and scores; plot the alpha sweep.

    \b
    A sweep of alpha, queued and run:
      dvc exp run --queue -S 'alpha=0.001,0.01,0.05,0.1'
      dvc queue start && dvc queue status   # wait until every task is done
      ksl experiments
    """
    from kslottery import stage
    from kslottery.sweep import dvc_exp_show, experiment_table, plot_alpha_sweep, to_markdown

    exp_show = json.loads(Path(exp_json).read_text()) if exp_json else dvc_exp_show(repo)
    try:
        frame = experiment_table(exp_show)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    markdown = to_markdown(frame)
    out = Path(out)
    stage.write_text(out / "experiments.md", markdown)
    click.echo(markdown)
    written = [out / "experiments.md"]
    if "alpha" in frame:
        with stage.atomic_file(out / "alpha_sweep.png") as tmp:
            plot_alpha_sweep(frame, tmp)
        written.append(out / "alpha_sweep.png")
    click.echo("wrote " + ", ".join(map(str, written)))


if __name__ == "__main__":
    main()
