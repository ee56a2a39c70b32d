"""`ksl`: the command line. Each command is wiring only; the logic lives in the modules it calls.

The pipeline stages themselves are the scripts in stages/ (what dvc.yaml runs); `ksl` adds the
commands a researcher types by hand.
"""

from __future__ import annotations

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
def table(eval_dir, certify_dir):
    """Print the comparison table (and certification) from the committed metrics."""
    from pathlib import Path

    from kslottery.report import report_markdown

    click.echo(report_markdown(eval_dir, certify_dir if Path(certify_dir).is_dir() else None)[1])


if __name__ == "__main__":
    main()
