"""``trimpomdp simulate MODEL POLICY``: mean discounted return of a policy, with a 95% interval."""
from __future__ import annotations

import json
from pathlib import Path

import click

from trimpomdp.errors import ModelError, TrimError


@click.command(name="simulate")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--episodes", type=int, default=10_000, show_default=True, help="Number of simulated episodes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--horizon", type=int, default=None,
              help="Steps per episode (default: until gamma^t * max|R| < 1e-3, or a terminal state).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def simulate(model, policy, episodes, seed, horizon, as_json):
    """Simulate POLICY (.npz, or APPL .policy XML) on MODEL (.pomdp/.pomdpx) from its initial belief."""
    from trimpomdp.policies.files import load_alpha_policy
    from trimpomdp.policies.evaluation import simulate_policy
    from trimpomdp.pomdp.io import load_model

    if episodes < 1:
        raise TrimError(f"simulate: --episodes must be >= 1, got {episodes}")
    if horizon is not None and horizon < 1:
        raise TrimError(f"simulate: --horizon must be >= 1, got {horizon}")
    pomdp = load_model(Path(model))
    pol = load_alpha_policy(policy)
    try:
        pol.check_model(pomdp)
    except ModelError as exc:
        raise TrimError(f"simulate: {policy} does not fit {model}: {exc}") from None
    res = simulate_policy(pomdp, pol, episodes=episodes, horizon=horizon, seed=seed)
    if as_json:
        out = res.to_dict()
        out.update(model=str(model), policy=str(policy), seed=seed)
        click.echo(json.dumps(out))
    else:
        click.echo(f"mean discounted return {res.mean:.6g}  95% CI [{res.ci95_low:.6g}, {res.ci95_high:.6g}]  "
                   f"std {res.std:.4g}  episodes {res.episodes}  horizon {res.horizon}")
