"""Prefix trie over item codes (each followed by EOS), as flat tensors for batched decoding.

Node 0 is the root. Every item's code + EOS is a path from the root to a leaf that names the item.
A single extra node, DONE, has one child (PAD -> DONE), so beams that already emitted EOS carry
their score forward unchanged while the others keep decoding.

For critique-constrained decoding, each node keeps a boolean row over item groups (level-1
descriptors) that are reachable below it; a child is allowed for a user only if its row meets the
user's allowed set, so a beam can never enter a subtree without an allowed item.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .tokenizers import EOS, PAD


class ItemTrie:
    def __init__(self, codes: Sequence[tuple[int, ...]], vocab_size: int, item_groups: Sequence[int] | None = None,
                 n_groups: int = 0) -> None:
        children: list[dict[int, int]] = [{}]
        leaf_item: list[int] = [-1]
        groups_of: list[set[int]] = [set()]
        for item, code in enumerate(codes):
            node = 0
            g = item_groups[item] if item_groups is not None else None
            if g is not None:
                groups_of[0].add(g)
            for tok in tuple(code) + (EOS,):
                nxt = children[node].get(tok)
                if nxt is None:
                    nxt = len(children)
                    children[node][tok] = nxt
                    children.append({})
                    leaf_item.append(-1)
                    groups_of.append(set())
                node = nxt
                if g is not None:
                    groups_of[node].add(g)
            if leaf_item[node] != -1:
                raise ValueError(f"items {leaf_item[node]} and {item} have the same code {code}")
            leaf_item[node] = item
        self.done = len(children)
        children.append({PAD: len(children)})
        leaf_item.append(-1)
        groups_of.append(set())
        self.n_nodes = len(children)
        self.vocab_size = vocab_size
        self.max_depth = max(len(c) for c in codes) + 1
        # CSR layout: the children of node n are child_tok/child_node[offsets[n]:offsets[n+1]].
        counts = np.array([len(c) for c in children], dtype=np.int64)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]))
        self.child_tok = torch.tensor([t for c in children for t in c.keys()], dtype=torch.long)
        self.child_node = torch.tensor([n for c in children for n in c.values()], dtype=torch.long)
        # Leaves (after EOS) continue into DONE.
        self.leaf_item = torch.tensor(leaf_item, dtype=torch.long)
        self.n_groups = n_groups
        if item_groups is not None:
            gm = np.zeros((self.n_nodes, max(n_groups, 1)), dtype=bool)
            for n, gs in enumerate(groups_of):
                for g in gs:
                    gm[n, g] = True
            self.group_mask = torch.from_numpy(gm)
        else:
            self.group_mask = None

    def to(self, device) -> "ItemTrie":
        for name in ("offsets", "child_tok", "child_node", "leaf_item", "group_mask"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, v.to(device))
        return self

    def step_mask(self, nodes: torch.Tensor, allowed_groups: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """For beam states ``nodes`` (N,), a (N, V) bool mask of valid next tokens and a (N, V)
        next-node table (-1 where invalid). ``allowed_groups`` (N, G) restricts by item group.
        Leaf nodes (after EOS) step to DONE through PAD."""
        leaf = self.leaf_item[nodes] >= 0
        nodes = torch.where(leaf, torch.full_like(nodes, self.done), nodes)
        start = self.offsets[nodes]
        cnt = self.offsets[nodes + 1] - start
        rows = torch.repeat_interleave(torch.arange(len(nodes), device=nodes.device), cnt)
        first = torch.repeat_interleave(start - torch.cumsum(cnt, 0) + cnt, cnt)
        flat = first + torch.arange(int(cnt.sum()), device=nodes.device)
        toks = self.child_tok[flat]
        nxt = self.child_node[flat]
        if allowed_groups is not None and self.group_mask is not None:
            ok = (self.group_mask[nxt] & allowed_groups[rows]).any(dim=1) | (nxt == self.done)
            rows, toks, nxt = rows[ok], toks[ok], nxt[ok]
        mask = torch.zeros(len(nodes), self.vocab_size, dtype=torch.bool, device=nodes.device)
        table = torch.full((len(nodes), self.vocab_size), -1, dtype=torch.long, device=nodes.device)
        mask[rows, toks] = True
        table[rows, toks] = nxt
        return mask, table
