"""Vocabulary assignment (paper §4.2): every item gets one valid descriptor path through the tree."""

from agentictagger.errors import InvalidPathError  # noqa: F401
from agentictagger.assign.base import (  # noqa: F401
    Assigner,
    Assignment,
    check_path,
)
from agentictagger.assign.embedding import DescriptorIndex, EmbeddingAssigner, descriptor_text  # noqa: F401
from agentictagger.assign.llm import (  # noqa: F401
    NONE_CHOICE,
    HybridAssigner,
    LLMAssigner,
    SingleCallAssigner,
    level_prompt,
    repair_path,
    tree_paths,
)
from agentictagger.assign.driver import PARTIAL, assign_catalog, make_assigner, run_assign  # noqa: F401
