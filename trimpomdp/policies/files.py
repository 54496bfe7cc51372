"""Policy files by suffix: ``.npz`` (ours, with metadata) or ``.policy``/``.xml`` (SARSOP's XML)."""
from __future__ import annotations

from pathlib import Path

from trimpomdp.errors import TrimError
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.policies.xml import read_policy_xml, write_policy_xml


def load_alpha_policy(path) -> AlphaVectorPolicy:
    """A policy from our ``.npz`` format or from an APPL/SARSOP ``.policy``/``.xml`` file."""
    if Path(path).suffix.lower() in (".policy", ".xml"):
        return read_policy_xml(path)
    return AlphaVectorPolicy.load(path)


def save_alpha_policy(policy: AlphaVectorPolicy, model, path) -> str:
    """Write ``policy`` by the file's suffix: ``.npz`` (ours, with metadata) or ``.policy``/``.xml`` (the
    XML that SARSOP's ``pomdpsol`` writes, readable by its tools)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix in (".policy", ".xml"):
        write_policy_xml(policy, model, out)
    elif suffix == ".npz":
        policy.save(out)
    else:
        raise TrimError(f"{out}: a policy file must end with .npz, .policy or .xml")
    return str(out)
