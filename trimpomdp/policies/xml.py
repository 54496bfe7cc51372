"""APPL/SARSOP ``.policy`` XML files, so that our policies run in APPL's tools and theirs run in ours.

The format (written by ``pomdpsol``): a ``<Policy>`` root holding one ``<AlphaVector vectorLength=Y
numObsValue=X numVectors=K>`` with one ``<Vector action="a" obsValue="x">v_1 ... v_Y</Vector>`` per alpha
vector; APPL may also write ``<SparseVector>`` elements with ``<Entry>state value</Entry>`` children.
``numObsValue`` is the number of values of the fully observed state variables (APPL's MOMDP factoring,
1 for a flat model), ``obsValue`` the one a vector belongs to and ``vectorLength`` the number of hidden
values: vectors are over the hidden state only. Both programs number visible and hidden values alike (each
the product of its variables in declaration order, the first slowest), so a policy of either runs in the
other's tools. pomdpsol writes the vectors grouped by ``obsValue``, as we do.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from trimpomdp.errors import FormatError
from trimpomdp.policies.alpha import AlphaVectorPolicy

_XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: alpha values (vectors x states) a policy may hold: a dense copy of a sparse file must fit in memory
MAX_ENTRIES = 50_000_000


def write_policy_xml(policy: AlphaVectorPolicy, model=None, path=None, model_name: str | None = None) -> Path:
    """Write ``policy`` as an APPL ``.policy`` file; ``model`` (optional) supplies the model attribute."""
    if path is None:
        raise FormatError("write_policy_xml needs an output path")
    path = Path(path)
    if model is not None:
        policy.check_model(model)
    name = model_name or (getattr(model, "name", "") if model is not None else "") or "model"
    K, Y = policy.alphas.shape
    lines = [
        "<?xml version='1.0' encoding='ISO-8859-1'?>",
        f'<Policy version="0.1" type="value" model="{_escape(name)}" xmlns:xsi="{_XSI}" '
        'xsi:noNamespaceSchemaLocation="policyx.xsd">',
        f'<AlphaVector vectorLength="{Y}" numObsValue="{policy.n_visible}" numVectors="{K}">',
    ]
    for k in np.argsort(policy.visible, kind="stable"):
        lines.append(f'<Vector action="{int(policy.actions[k])}" obsValue="{int(policy.visible[k])}">'
                     + " ".join(repr(float(v)) for v in policy.alphas[k]) + " </Vector>")
    lines += ["</AlphaVector> </Policy>", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="latin-1")
    return path


def read_policy_xml(path) -> AlphaVectorPolicy:
    """Read an APPL ``.policy`` file (dense or sparse vectors) into an ``AlphaVectorPolicy``."""
    from trimpomdp.schemas import file_problem

    path = Path(path)
    problem = file_problem(path, kind="xml")
    if problem:
        raise FormatError("file not found" if problem == "does not exist" else problem, str(path))
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise FormatError(f"not well-formed XML ({exc})", str(path), exc.position[0]) from None
    except LookupError as exc:  # <?xml encoding="..."?> names an encoding Python does not know
        raise FormatError(f"not well-formed XML ({exc})", str(path), 1) from None
    if root.tag != "Policy":
        raise FormatError(f"root element is <{root.tag}>, expected <Policy>", str(path))
    block = root.find("AlphaVector")
    if block is None:
        raise FormatError("no <AlphaVector> element", str(path))
    try:
        S = int(block.get("vectorLength"))
        n_obs = int(block.get("numObsValue", "1"))
        K_decl = int(block.get("numVectors")) if block.get("numVectors") is not None else None
    except (TypeError, ValueError):
        raise FormatError("<AlphaVector> needs integer vectorLength, numObsValue and numVectors attributes",
                          str(path)) from None
    if S < 1 or (K_decl is not None and K_decl < 0):
        raise FormatError(f"<AlphaVector> vectorLength must be >= 1 and numVectors >= 0, got {S} and {K_decl}",
                          str(path))
    if S > MAX_ENTRIES:
        raise FormatError(f"<AlphaVector> vectorLength={S} exceeds {MAX_ENTRIES} states", str(path))
    if not 1 <= n_obs <= MAX_ENTRIES:
        raise FormatError(f"<AlphaVector> numObsValue must be in 1..{MAX_ENTRIES}, got {n_obs}", str(path))
    alphas, actions, visible = [], [], []
    for k, el in enumerate(block):
        try:
            a = int(el.get("action"))
        except (TypeError, ValueError):
            raise FormatError(f"vector {k}: missing or non-integer action attribute", str(path)) from None
        x_text = el.get("obsValue")
        if x_text is None and n_obs > 1:
            raise FormatError(f"vector {k}: no obsValue attribute (numObsValue={n_obs})", str(path))
        try:
            x = int(x_text) if x_text is not None else 0
        except ValueError:
            raise FormatError(f"vector {k}: obsValue {x_text[:20]!r} is not an integer", str(path)) from None
        if not 0 <= x < n_obs:
            raise FormatError(f"vector {k}: obsValue {x} is outside 0..{n_obs - 1} (numObsValue={n_obs})",
                              str(path))
        if el.tag == "Vector":
            try:
                vec = np.array([float(x) for x in (el.text or "").split()])
            except ValueError:
                raise FormatError(f"vector {k}: non-numeric entry", str(path)) from None
        elif el.tag == "SparseVector":
            vec = np.zeros(S)
            for entry in el.findall("Entry"):
                parts = (entry.text or "").split()
                try:
                    i, v = int(parts[0]), float(parts[1])
                except (IndexError, ValueError):
                    raise FormatError(f"vector {k}: bad <Entry> {entry.text!r}, expected 'state value'",
                                      str(path)) from None
                if not 0 <= i < S:
                    raise FormatError(f"vector {k}: <Entry> state {i} is outside 0..{S - 1} (vectorLength={S})",
                                      str(path))
                vec[i] = v
        else:
            raise FormatError(f"unexpected <{el.tag}> inside <AlphaVector>", str(path))
        if vec.shape != (S,):
            raise FormatError(f"vector {k} has {vec.size} entries, vectorLength says {S}", str(path))
        if not np.all(np.isfinite(vec)):
            j = int(np.flatnonzero(~np.isfinite(vec))[0])
            raise FormatError(f"vector {k}: entry {j} is {vec[j]!r}, alpha values must be finite", str(path))
        if a < 0:
            raise FormatError(f"vector {k}: action {a} is negative", str(path))
        if a >= 2**31:  # an index into the model's actions; int64 would overflow at ~19 digits
            raise FormatError(f"vector {k}: action index too large ({len(str(a))} digits)", str(path))
        if (len(alphas) + 1) * S > MAX_ENTRIES:
            raise FormatError(f"the policy holds more than {MAX_ENTRIES} alpha values", str(path))
        alphas.append(vec)
        actions.append(a)
        visible.append(x)
    if not alphas:
        raise FormatError("the policy holds no vectors", str(path))
    if K_decl is not None and K_decl != len(alphas):
        raise FormatError(f"numVectors={K_decl} but {len(alphas)} vectors found", str(path))
    return AlphaVectorPolicy(np.array(alphas), np.array(actions), {"source": "appl_policy_xml",
                                                                   "model": root.get("model", "")},
                             visible=np.array(visible) if n_obs > 1 else None, n_visible=n_obs)


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;"))
