"""SARSOP's factored ``.pomdpx`` XML format, flattened to the tabular POMDP or kept as a MOMDP.

Joint states are the product of the state variables in declaration order (the first variable varies
slowest); joint observations the product of the observation variables, followed by the fully observed
state variables (a MOMDP's visible part becomes part of what the agent observes). Rewards of all reward
functions are summed, and rewards that depend on next-state variables are folded by expectation over T.
With ``momdp=True`` the ``fullyObs="true"`` variables stay factored: the result is a ``MOMDP`` whose visible
value is the joint value of those variables and whose hidden value is that of the others (both in
declaration order); its flat form is the flat path's model, with the joint states reordered visible-major
when a visible variable is declared after a hidden one.

The XML is read with expat directly, which keeps each element's line for error messages; documents that
declare a DOCTYPE or entities are refused outright (entity expansion is the classic XML attack and
defusedxml is not a dependency).

Table keywords follow SARSOP's parser: in a <ProbTable> ``identity`` is the identity between two '-'
variables of equal size and ``uniform`` a uniform distribution over the table's variable(s) (SARSOP itself
accepts ``uniform`` only in the initial belief; elsewhere it is read with the same meaning). A reward
<ValueTable> holds utilities, not distributions, so neither keyword means anything there and both are
refused.

The joint model is flattened variable by variable without a dense joint table, and every step is
checked against the memory limit (``trimpomdp.resource_limits``) before it allocates: the declared sizes
first, then each conditional table and each expansion of the transition and observation supports.
"""
from __future__ import annotations

import math
import re
import xml.parsers.expat
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from trimpomdp.errors import FormatError
from trimpomdp.pomdp.cassandra import BUILD_BYTES, NAME_BYTES, NNZ_BYTES, normalize_rows, normalize_vector
from trimpomdp.pomdp.model import POMDP, ROW_SUM_TOL
from trimpomdp.resource_limits import MemoryBudget, check_actions

#: bytes per joint state or observation name ("_"-joined values, list and tuple slots)
JOINT_NAME_BYTES = 120

_UNSAFE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass
class _Node:
    tag: str
    attrib: dict
    line: int
    children: list = field(default_factory=list)
    parts: list = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def find(self, tag: str):
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str):
        return [c for c in self.children if c.tag == tag]


def _parse_xml(data: bytes, path: str) -> _Node:
    m = _UNSAFE.search(data)
    if m:
        line = data[: m.start()].count(b"\n") + 1
        raise FormatError("DOCTYPE/ENTITY declarations are not allowed in .pomdpx files (unsafe XML)", path, line)
    p = xml.parsers.expat.ParserCreate()
    stack: list[_Node] = []
    root: list[_Node] = []

    def refuse(*_):
        raise FormatError("DOCTYPE/ENTITY declarations are not allowed in .pomdpx files (unsafe XML)",
                          path, p.CurrentLineNumber)

    def start(tag, attrs):
        node = _Node(tag, attrs, p.CurrentLineNumber)
        (stack[-1].children if stack else root).append(node)
        stack.append(node)

    def end(tag):
        stack.pop()

    def chars(text):
        if stack:
            stack[-1].parts.append(text)

    p.StartElementHandler, p.EndElementHandler, p.CharacterDataHandler = start, end, chars
    p.StartDoctypeDeclHandler = refuse
    p.EntityDeclHandler = refuse
    p.ExternalEntityRefHandler = refuse
    try:
        p.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise FormatError(f"malformed XML: {xml.parsers.expat.ErrorString(exc.code)}", path, exc.lineno) from None
    except LookupError as exc:  # <?xml encoding="..."?> names an encoding Python does not know
        raise FormatError(f"malformed XML: {exc}", path, 1) from None
    if not root or root[0].tag != "pomdpx":
        raise FormatError("root element must be <pomdpx>", path, 1)
    return root[0]


@dataclass
class _Var:
    name: str
    kind: str  # 'prev' | 'curr' | 'obs' | 'action'
    index: int  # position among state / observation variables
    values: list[str]

    @property
    def size(self) -> int:
        return len(self.values)


class _Reader:
    def __init__(self, root: _Node, path: str, max_memory_mb: float | None = None):
        self.root, self.path = root, path
        self.budget = MemoryBudget(path, max_memory_mb)
        self.held = 0  # bytes of what has been built and is kept (matrices, rewards, names)
        self.vars: dict[str, _Var] = {}
        self.state_vars: list[tuple[_Var, _Var, bool]] = []  # (prev, curr, fully observed)
        self.obs_vars: list[_Var] = []
        self.action: _Var | None = None
        self.reward_vars: set[str] = set()

    def fail(self, msg: str, node: _Node | None):
        raise FormatError(msg, self.path, node.line if node is not None else None)

    def child(self, node: _Node, tag: str) -> _Node:
        c = node.find(tag)
        if c is None:
            self.fail(f"<{node.tag}> needs a <{tag}> element", node)
        return c

    # ------------------------------------------------------------------ variables
    def values_of(self, node: _Node, prefix: str) -> list[str]:
        enum, num = node.find("ValueEnum"), node.find("NumValues")
        if enum is not None:
            vals = enum.text.split()
            if not vals or len(set(vals)) != len(vals):
                self.fail("<ValueEnum> needs distinct value names", enum)
            return vals
        if num is not None:
            try:
                k = int(num.text.strip())
            except ValueError:
                k = 0
            if k <= 0:
                self.fail(f"<NumValues> must be a positive integer, got {num.text.strip()!r}", num)
            self.budget.check(NAME_BYTES * k, f"<NumValues> {k}", num.line)
            return [f"{prefix}{j}" for j in range(k)]
        self.fail(f"<{node.tag}> needs <ValueEnum> or <NumValues>", node)

    def read_variables(self):
        var = self.child(self.root, "Variable")
        for node in var.children:
            if node.tag == "StateVar":
                prev, curr = node.attrib.get("vnamePrev"), node.attrib.get("vnameCurr")
                if not prev or not curr:
                    self.fail("<StateVar> needs vnamePrev and vnameCurr", node)
                vals = self.values_of(node, "s")
                k = len(self.state_vars)
                pv, cv = _Var(prev, "prev", k, vals), _Var(curr, "curr", k, vals)
                fo = node.attrib.get("fullyObs", "false").strip().lower() == "true"
                self.state_vars.append((pv, cv, fo))
                self.add(pv, node)
                self.add(cv, node)
            elif node.tag == "ObsVar":
                v = _Var(self.vname(node), "obs", len(self.obs_vars), self.values_of(node, "o"))
                self.obs_vars.append(v)
                self.add(v, node)
            elif node.tag == "ActionVar":
                if self.action is not None:
                    self.fail("only one <ActionVar> is supported", node)
                self.action = _Var(self.vname(node), "action", 0, self.values_of(node, "a"))
                check_actions(self.action.size, self.path, node.line)
                self.add(self.action, node)
            elif node.tag == "RewardVar":
                self.reward_vars.add(self.vname(node))
        if not self.state_vars:
            self.fail("<Variable> declares no <StateVar>", var)
        if self.action is None:
            self.fail("<Variable> declares no <ActionVar>", var)

    def vname(self, node: _Node) -> str:
        v = node.attrib.get("vname")
        if not v:
            self.fail(f"<{node.tag}> needs a vname attribute", node)
        return v

    def add(self, v: _Var, node: _Node):
        if v.name in self.vars:
            self.fail(f"variable {v.name!r} is declared twice", node)
        self.vars[v.name] = v

    # ------------------------------------------------------------------ tables
    def table(self, node: _Node, section: str, prob: bool) -> tuple[list[_Var], list[_Var], np.ndarray]:
        """Dense table over (parents..., vars...) of one <CondProb> or <Func>; later entries win."""
        var_node = self.child(node, "Var")
        names = var_node.text.split()
        parent_node = node.find("Parent")
        pnames = parent_node.text.split() if parent_node is not None else []
        if pnames == ["null"]:
            pnames = []
        for nm, where in [(x, var_node) for x in names] + [(x, parent_node) for x in pnames]:
            if nm not in self.vars and not (not prob and nm in self.reward_vars):
                self.fail(f"{section}: unknown variable {nm!r}", where)
        parents = [self.vars[x] for x in pnames]
        children = [self.vars[x] for x in names] if prob else []
        dims = parents + children
        shape = tuple(v.size for v in dims)
        cells = math.prod(shape)
        self.budget.check(self.held + 16 * cells, f"{section}: the table over "
                          f"({' '.join(v.name for v in dims)}) of {cells:,} cells", node.line)
        tab = np.zeros(shape)
        param = self.child(node, "Parameter")
        if param.attrib.get("type", "TBL").strip() != "TBL":
            self.fail(f"{section}: only Parameter type 'TBL' is supported, got {param.attrib.get('type')!r}",
                      param)
        tag = "ProbTable" if prob else "ValueTable"
        for entry in param.findall("Entry"):
            inst_node, val_node = self.child(entry, "Instance"), self.child(entry, tag)
            inst = inst_node.text.split()
            if len(inst) != len(dims):
                self.fail(f"{section}: <Instance> needs {len(dims)} values "
                          f"({' '.join(v.name for v in dims)}), got {len(inst)}", inst_node)
            idx, free = [], []
            for tok, v in zip(inst, dims):
                if tok in ("*", "-"):
                    idx.append(slice(None))
                    free.append(v.size if tok == "-" else 1)
                else:
                    idx.append(self.value_index(v, tok, section, inst_node))
            want = int(np.prod([f for f in free])) if free else 1
            words = val_node.text.split()
            target_shape = tuple(free)
            if not prob and any(w.lower() in ("identity", "uniform") for w in words):
                word = next(w for w in words if w.lower() in ("identity", "uniform"))
                self.fail(f"{section}: {word!r} is not allowed in a <ValueTable>: rewards are utilities, not "
                          f"distributions; give the {want} value(s) for instance {' '.join(inst)!r}", val_node)
            if words == ["identity"]:
                dash = [k for k, t in enumerate(inst) if t == "-"]
                if len(dash) != 2 or dims[dash[0]].size != dims[dash[1]].size:
                    self.fail(f"{section}: 'identity' needs exactly two '-' variables of equal size", val_node)
                tab[tuple(idx)] = np.eye(dims[dash[0]].size).reshape(target_shape)
                continue
            if words == ["uniform"]:
                n_child = int(np.prod([v.size for v in children])) if children else 1
                tab[tuple(idx)] = 1.0 / n_child
                continue
            try:
                vals = np.array(words, dtype=np.float64)
            except ValueError:
                bad = next(w for w in words if not _is_float(w))
                self.fail(f"{section}: bad number {bad!r} in <{tag}>", val_node)
            if vals.size not in (want, 1):
                self.fail(f"{section}: <{tag}> needs {want} values for instance {' '.join(inst)!r}, "
                          f"got {vals.size}", val_node)
            if not np.all(np.isfinite(vals)) or (prob and (vals.min() < 0 or vals.max() > 1 + 1e-9)):
                self.fail(f"{section}: <{tag}> values must be " + ("probabilities in [0, 1]" if prob else "finite"),
                          val_node)
            tab[tuple(idx)] = vals.reshape(target_shape) if vals.size == want else vals[0]
        return parents, children, tab

    def value_index(self, v: _Var, tok: str, section: str, node: _Node) -> int:
        try:
            return v.values.index(tok)
        except ValueError:
            pass
        if tok.isdecimal() and int(tok) < v.size:
            return int(tok)
        self.fail(f"{section}: unknown value {tok!r} of variable {v.name!r}", node)

    # ------------------------------------------------------------------ flattening
    def read(self, name: str, validate: bool = True, momdp: bool = False):
        self.read_variables()
        disc_node = self.root.find("Discount")
        discount = 1.0
        if disc_node is not None:
            try:
                discount = float(disc_node.text)
            except ValueError:
                self.fail(f"<Discount> must be a number, got {disc_node.text.strip()!r}", disc_node)
        self.sizes = [pv.size for pv, _, _ in self.state_vars]
        # joint state s -> value of state variable k: (s // strides[k]) % sizes[k] (first variable slowest)
        self.strides = [math.prod(self.sizes[k + 1:]) for k in range(len(self.sizes))]
        S, A = math.prod(self.sizes), self.action.size
        Z = math.prod(self.obs_sizes())
        self.held = JOINT_NAME_BYTES * (S + Z) + 8 * S + 16 * S * A
        self.budget.check(self.held + 2 * NNZ_BYTES * S * A,
                          f"a model of {S:,} joint states, {A:,} actions and {Z:,} joint observations",
                          self.child(self.root, "Variable").line)
        b0 = self.initial_belief(S)
        T = self.transitions(S, A)
        O, obs_names = self.observations(S, A)
        R = self.rewards(S, A, T)
        states = self.joint_names([pv.values for pv, _, _ in self.state_vars])
        model = POMDP.from_arrays(T, O, R, discount, b0, states, self.action.values, obs_names, name=name,
                                  validate=False)
        if validate:
            problems = model.validation_problems(ROW_SUM_TOL)
            if problems:
                extra = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
                raise FormatError(problems[0] + extra, self.path)
            model = POMDP.from_arrays([normalize_rows(m) for m in T], [normalize_rows(m) for m in O], R,
                                      discount, normalize_vector(b0), states, self.action.values, obs_names,
                                      name=name)
        return self.factored(model, validate) if momdp else model

    def factored(self, model: POMDP, validate: bool):
        """The MOMDP of the flat ``model``: visible variables first (joint states reordered if needed)."""
        from trimpomdp.pomdp.momdp import MOMDP

        vis = [k for k, (_, _, fo) in enumerate(self.state_vars) if fo]
        hid = [k for k, (_, _, fo) in enumerate(self.state_vars) if not fo]
        order = vis + hid
        if order != sorted(order):
            # new joint index (visible digits, then hidden digits) -> old joint index
            new = np.arange(model.n_states)
            sizes = [self.sizes[k] for k in order]
            old = np.zeros_like(new)
            for j, k in enumerate(order):
                old += ((new // math.prod(sizes[j + 1:])) % sizes[j]) * self.strides[k]
            P = sp.csr_matrix((np.ones(old.size), (np.arange(old.size), old)), shape=(old.size, old.size))
            term = None if model.terminal is None else model.terminal[old]
            model = POMDP.from_arrays([P @ m @ P.T for m in model.T], [P @ m for m in model.O], model.R[old],
                                      model.discount, model.initial_belief[old],
                                      [model.states[i] for i in old], model.actions, model.observations,
                                      term, model.name, validate=False)
        visible = self.joint_names([self.state_vars[k][0].values for k in vis]) if vis else [""]
        hidden = self.joint_names([self.state_vars[k][0].values for k in hid]) if hid else [""]
        obs = self.joint_names([v.values for v in self.obs_vars]) if self.obs_vars else [""]
        m = MOMDP(model, tuple(visible), tuple(hidden), tuple(obs))
        if validate:
            problem = m.structure_problem()
            if problem:  # pragma: no cover - the flattening above builds this layout
                raise FormatError(problem, self.path)
        return m

    @staticmethod
    def joint_names(value_lists) -> list[str]:
        if len(value_lists) == 1:
            return list(value_lists[0])
        return ["_".join(t) for t in product(*value_lists)]

    def digit(self, joint: np.ndarray, k: int) -> np.ndarray:
        """Value of state variable k in each joint state index."""
        return (joint // self.strides[k]) % self.sizes[k]

    def obs_sizes(self) -> list[int]:
        """Sizes of the joint observation's parts: observation variables, then fully observed state variables."""
        return [v.size for v in self.obs_vars] + [pv.size for pv, _, fo in self.state_vars if fo]

    def gather(self, parents: list[_Var], tab: np.ndarray, n: int, a: int, prev=None, curr=None):
        """Index ``tab`` by the parent values of n joint rows: returns (n, *child dims).

        ``prev(k)`` / ``curr(k)`` give the values of state variable k before / after the step (None where
        unavailable, which raises KeyError naming the parent)."""
        for pos in reversed([j for j, v in enumerate(parents) if v.kind == "action"]):
            tab = np.take(tab, a, axis=pos)
        parents = [v for v in parents if v.kind != "action"]
        out_cells = n * math.prod(tab.shape[len(parents):])
        self.budget.check(self.held + 8 * (out_cells + n * len(parents)),
                          f"a table lookup for {n:,} joint rows ({out_cells:,} values)")
        idx = []
        for v in parents:
            get = prev if v.kind == "prev" else curr if v.kind == "curr" else None
            vals = get(v.index) if get is not None else None
            if vals is None:
                raise KeyError(v.name)
            idx.append(vals)
        return tab[tuple(idx)] if idx else np.broadcast_to(tab, (n,) + tab.shape)

    def successors(self, parents: list[_Var], tab: np.ndarray, n: int, a: int, what: str, node: _Node,
                   prev=None, curr=None):
        """(row, value, probability) of every nonzero entry of the child distributions of n joint rows.

        The table is made sparse per parent configuration first, so the cost is that of the nonzeros, not
        of n x (child values); ``prev``/``curr`` as in ``gather``."""
        for pos in reversed([j for j, v in enumerate(parents) if v.kind == "action"]):
            tab = np.take(tab, a, axis=pos)
        parents = [v for v in parents if v.kind != "action"]
        pdims = tab.shape[:len(parents)]
        table = sp.csr_matrix(tab.reshape(math.prod(pdims), -1))
        key = np.zeros(n, dtype=np.int64)
        for v, d in zip(parents, pdims):
            get = prev if v.kind == "prev" else curr if v.kind == "curr" else None
            vals = get(v.index) if get is not None else None
            if vals is None:
                raise KeyError(v.name)
            key = key * d + vals
        counts = np.diff(table.indptr)[key]
        total = int(counts.sum())
        self.budget.check(self.held + BUILD_BYTES * total, what, node.line)
        rows = np.repeat(np.arange(n), counts)
        pos = np.arange(total) + np.repeat(table.indptr[key] - (np.cumsum(counts) - counts), counts)
        return rows, table.indices[pos].astype(np.int64), table.data[pos]

    def cond_probs(self, section: str):
        sec = self.root.find(section)
        if sec is None:
            self.fail(f"missing <{section}>", self.root)
        return sec, [self.table(c, section, True) + (c,) for c in sec.findall("CondProb")]

    def initial_belief(self, S: int) -> np.ndarray:
        sec = self.root.find("InitialStateBelief")
        if sec is None:
            return np.full(S, 1.0 / S)
        b = np.ones(S)
        covered = set()
        for c in sec.findall("CondProb"):
            parents, children, tab, = self.table(c, "InitialStateBelief", True)
            if parents or any(v.kind not in ("prev", "curr") for v in children):
                self.fail("InitialStateBelief: <CondProb> must be over state variables with Parent null", c)
            joint = np.arange(S)
            b *= tab[tuple(self.digit(joint, v.index) for v in children)]
            covered.update(v.index for v in children)
        if len(covered) != len(self.state_vars):
            # unspecified variables start uniformly
            for k, (pv, _, _) in enumerate(self.state_vars):
                if k not in covered:
                    b /= pv.size
        return b

    def transitions(self, S: int, A: int) -> list[sp.csr_matrix]:
        sec, cps = self.cond_probs("StateTransitionFunction")
        by_var = {}
        for parents, children, tab, node in cps:
            if len(children) != 1 or children[0].kind != "curr":
                self.fail("StateTransitionFunction: each <CondProb> needs one next-state variable as <Var>", node)
            if children[0].index in by_var:
                self.fail(f"StateTransitionFunction: a second <CondProb> for {children[0].name!r}", node)
            by_var[children[0].index] = (parents, tab, node)
        for k, (_, cv, _) in enumerate(self.state_vars):
            if k not in by_var:
                self.fail(f"StateTransitionFunction: no <CondProb> for {cv.name!r}", sec)
        mats = []
        sizes = self.sizes
        for a in range(A):
            rows = np.arange(S)
            cols = np.zeros(S, dtype=np.int64)  # next-state variables expanded so far, first slowest
            prob = np.ones(S)
            for k in range(len(sizes)):
                parents, tab, node = by_var[k]

                def curr(j, k=k, cols=cols):
                    return None if j >= k else (cols // math.prod(sizes[j + 1:k])) % sizes[j]

                try:
                    r, v, p = self.successors(parents, tab, rows.size, a, f"StateTransitionFunction: the "
                                              f"successors of action {self.action.values[a]!r} over {S:,} joint "
                                              "states", node, prev=lambda j: self.digit(rows, j), curr=curr)
                except KeyError as exc:
                    self.fail(f"StateTransitionFunction: parent {exc} of {self.state_vars[k][1].name!r} must be "
                              "the action, a previous-state or an earlier next-state variable", node)
                prob = prob[r] * p
                rows = rows[r]
                cols = cols[r] * sizes[k] + v
            mats.append(sp.csr_matrix((prob, (rows, cols)), shape=(S, S)))
            self.held += NNZ_BYTES * prob.size
        return mats

    def observations(self, S: int, A: int):
        sec, cps = self.cond_probs("ObsFunction") if self.obs_vars else (None, [])
        by_var = {}
        for parents, children, tab, node in cps:
            if len(children) != 1 or children[0].kind != "obs":
                self.fail("ObsFunction: each <CondProb> needs one observation variable as <Var>", node)
            if children[0].index in by_var:
                self.fail(f"ObsFunction: a second <CondProb> for {children[0].name!r}", node)
            by_var[children[0].index] = (parents, tab, node)
        for v in self.obs_vars:
            if v.index not in by_var:
                self.fail(f"ObsFunction: no <CondProb> for {v.name!r}", sec)
        visible = [k for k, (_, _, fo) in enumerate(self.state_vars) if fo]
        osizes = self.obs_sizes()
        names = self.joint_names([v.values for v in self.obs_vars] + [self.state_vars[k][1].values for k in visible]) \
            if osizes else ["none"]
        Z = math.prod(osizes)
        mats = []
        for a in range(A):
            rows = np.arange(S)
            got = np.zeros(S, dtype=np.int64)  # observation variables drawn so far, first slowest
            prob = np.ones(S)
            for v in self.obs_vars:
                parents, tab, node = by_var[v.index]
                if any(p.kind == "prev" for p in parents):
                    self.fail("ObsFunction: observations may depend on the action and next-state variables only",
                              node)
                try:
                    r, o, p = self.successors(parents, tab, rows.size, a, f"ObsFunction: the observations of "
                                              f"action {self.action.values[a]!r} over {S:,} joint states", node,
                                              curr=lambda j: self.digit(rows, j))
                except KeyError as exc:
                    self.fail(f"ObsFunction: unsupported parent {exc}", node)
                prob, rows, got = prob[r] * p, rows[r], got[r] * v.size + o
            for k in visible:
                got = got * self.sizes[k] + self.digit(rows, k)
            mats.append(sp.csr_matrix((prob, (rows, got)), shape=(S, Z)))
            self.held += NNZ_BYTES * prob.size
        return mats, names

    def rewards(self, S: int, A: int, T) -> np.ndarray:
        R = np.zeros((S, A))
        sec = self.root.find("RewardFunction")
        if sec is None:
            return R
        joint = np.arange(S)
        for f in sec.findall("Func"):
            parents, _, tab = self.table(f, "RewardFunction", False)
            if any(p.kind == "obs" for p in parents):
                self.fail("RewardFunction: rewards depending on observations are not supported", f)
            uses_next = any(p.kind == "curr" for p in parents)
            for a in range(A):
                if not uses_next:
                    R[:, a] += self.gather(parents, tab, S, a, prev=lambda j: self.digit(joint, j))
                else:
                    coo = T[a].tocoo()
                    self.budget.check(self.held + BUILD_BYTES * coo.nnz, "RewardFunction: rewards that depend "
                                      f"on next-state variables ({coo.nnz:,} transitions)", f.line)
                    vals = self.gather(parents, tab, coo.nnz, a, prev=lambda j: self.digit(coo.row, j),
                                       curr=lambda j: self.digit(coo.col, j))
                    R[:, a] += np.bincount(coo.row, weights=coo.data * vals, minlength=S)
        return R


def _is_float(w: str) -> bool:
    try:
        float(w)
        return True
    except ValueError:
        return False


def parse_pomdpx(data: bytes | str, path: str = "<string>", name: str = "", validate: bool = True,
                 max_memory_mb: float | None = None, momdp: bool = False):
    """Parse the bytes (or text) of a ``.pomdpx`` document into a tabular POMDP (validated unless told), or
    with ``momdp`` into a ``MOMDP`` keeping the fully observed variables factored.

    A model estimated to need more than ``max_memory_mb`` (default ``$TRIMPOMDP_MODEL_MEMORY_MB`` or
    4096) is refused before the memory is allocated."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _Reader(_parse_xml(data, path), path, max_memory_mb).read(name, validate, momdp)


def read_pomdpx(path, validate: bool = True, max_memory_mb: float | None = None, momdp: bool = False):
    """Read a SARSOP ``.pomdpx`` file (a ``POMDP``, or with ``momdp`` a ``MOMDP``); unsafe XML (DOCTYPE/ENTITY)
    is refused with a ``FormatError``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot read file: {exc.strerror or exc}", str(path)) from None
    return parse_pomdpx(data, str(path), name=path.stem, validate=validate, max_memory_mb=max_memory_mb,
                        momdp=momdp)
