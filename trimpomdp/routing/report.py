"""Text tables of family metrics and full costs, shared by ``eval`` (decode runs), ``simulate-routing``
(in-model) and the reference's real runs, so the three say the same thing the same way: a CPT that is not
reached reads "not reached", an unknown cost "unknown" or "not modelled", never a blank or NaN."""
from __future__ import annotations

from trimpomdp.routing.metrics import cpt_text
from trimpomdp.tables import fmt_num, format_table


def family_table(families: dict, count_key: str = "runs", name: str = "family", count_label: str | None = None) -> str:
    """One row per family: CPT at 50/80/95% PGR (percent of the strong-only cost, or 'not reached'), the
    highest PGR its front reaches, and Delta-IBC as mean and max over the family's points and mean over the
    PGR levels its front reaches (with how many of them)."""
    rows = []
    for f, v in families.items():
        n = v.get(count_key)
        front = v.get("delta_ibc_front")
        rows.append([f, len(n) if isinstance(n, list) else n,
                     *(cpt_text(v.get(k)) for k in ("cpt50", "cpt80", "cpt95")), fmt_num(v.get("max_pgr")),
                     fmt_num(v.get("delta_ibc_mean")), fmt_num(v.get("delta_ibc_max")),
                     None if front is None else f"{front:.3f} ({v['front_levels_reached']}/{v['front_levels']})"])
    return format_table([name, count_label or count_key, "CPT50", "CPT80", "CPT95", "max PGR", "dIBC mean", "dIBC max",
                         "dIBC front (levels)"], rows, align="lrrrrrrrr")


def price_text(cost: dict | None, missing: str = "not recorded") -> str | None:
    """A priced total (``costs.price``), naming the priced kinds it leaves out and why."""
    if not cost:
        return None
    if cost["total"] is None:
        return f"unknown ({', '.join(cost['excludes'])} {missing})"
    txt = f"{cost['total']:.4g}"
    if cost["excludes"]:
        txt += f" (without {', '.join(cost['excludes'])}: {missing})"
    return txt


def cost_table(rows: list[dict], unknown_prm: str = "unknown", unknown_seconds: str = "unknown") -> str:
    """Full cost per question, one line per row ({'name', 'strong_tokens', 'cheap_kept', 'cheap_discarded',
    'prm_tokens', 'seconds', 'seconds_known'?, 'n'?, 'cost'?}); a cost column when any row is priced."""
    priced = any(r.get("cost") for r in rows)
    out = []
    for r in rows:
        secs = r.get("seconds")
        if secs is None:
            secs_txt = unknown_seconds
        elif r.get("seconds_known") is not None and r.get("n") and r["seconds_known"] < r["n"]:
            secs_txt = f"{secs:.2f} ({r['seconds_known']}/{r['n']} known)"
        else:
            secs_txt = f"{secs:.2f}"
        line = [r["name"], fmt_num(r["strong_tokens"], 1),
                *(("unknown" if r.get(k) is None else fmt_num(r[k], 1)) for k in ("cheap_kept", "cheap_discarded")),
                unknown_prm if r.get("prm_tokens") is None else fmt_num(r["prm_tokens"], 1), secs_txt]
        if priced:
            line.append(price_text(r.get("cost"), unknown_prm))
        out.append(line)
    heads = ["name", "strong_tok/q", "cheap_kept/q", "cheap_discarded/q", "prm_read/q", "wall_s/q"]
    return format_table(heads + (["cost/q"] if priced else []), out, align="l" + "r" * (len(heads) - 1 + priced))
