"""Vocabulary assignment (paper §4.2): every item gets one valid descriptor path through the tree."""

from agentictagger.assign.base import (  # noqa: F401
    Assigner,
    AssignConfig,
    Assignment,
    InvalidPathError,
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
from agentictagger.assign.run import PARTIAL, assign_catalog, make_assigner, run_assign  # noqa: F401
