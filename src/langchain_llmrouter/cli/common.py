"""Helpers shared by the CLI verbs: configs, candidates, data and routers from files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.config import RouterConfig, load_config
from langchain_llmrouter.errors import ConfigError

if TYPE_CHECKING:
    from langchain_llmrouter.candidates import CandidatePool
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.graphs.base import BaseGraphRouter
    from langchain_llmrouter.routers.base import BaseRouter


def add_router_args(parser: argparse.ArgumentParser) -> None:
    """``--router`` and ``--config``, common to train, infer and eval."""
    parser.add_argument(
        "--router", required=True, help="router name (see `llmrouter list-routers`)"
    )
    parser.add_argument(
        "--config", required=True, type=Path, help="YAML config (LLMRouter's format works)"
    )


def add_load_model_arg(parser: argparse.ArgumentParser) -> None:
    """``--load-model-path``, common to infer and eval (overrides model_path.load_model_path)."""
    parser.add_argument(
        "--load-model-path",
        "--load_model_path",
        dest="load_model_path",
        type=Path,
        help="trained router directory",
    )


def router_config(args: argparse.Namespace) -> tuple[str, RouterConfig]:
    """Load the config and check that it agrees with ``--router``."""
    from langchain_llmrouter.routers.registry import get_router_class

    config = load_config(args.config)
    name = args.router.lower()
    get_router_class(name)  # unknown names list the valid ones
    if config.router and config.router.lower() != name:
        raise ConfigError(
            f"config is for router {config.router!r} but --router is {args.router!r}",
            path=config.source,
            field="router",
        )
    return name, config


def candidate_pool(config: RouterConfig, **kwargs: Any) -> CandidatePool:
    """The candidates named by ``data_path.llm_data``."""
    from langchain_llmrouter.candidates import CandidatePool

    if not config.data_path.llm_data:
        raise ConfigError(
            "missing: the candidates JSON is needed", path=config.source, field="data_path.llm_data"
        )
    path = config.resolve(config.data_path.llm_data, what="data_path.llm_data")
    pool = CandidatePool.from_json(path, api_endpoint=config.api_endpoint, **kwargs)  # type: ignore[arg-type]
    if config.data_path.llm_embedding_data:
        pool.add_embeddings(
            config.resolve(config.data_path.llm_embedding_data, what="data_path.llm_embedding_data")  # type: ignore[arg-type]
        )
    return pool


def routing_data(
    config: RouterConfig, key: str, pool: CandidatePool, override: Path | None = None
) -> RoutingDataset:
    """Routing data from ``data_path.<key>`` (or an explicit file)."""
    from langchain_llmrouter.data import RoutingDataset

    if override is not None:
        path = override
    else:
        value = getattr(config.data_path, key)
        if not value:
            raise ConfigError(
                "missing: a routing data file is needed",
                path=config.source,
                field=f"data_path.{key}",
            )
        path = config.resolve(value, what=f"data_path.{key}")  # type: ignore[assignment]
    return RoutingDataset.from_file(path, candidates=pool)


def interactions_data(config: RouterConfig) -> tuple[list[Any], int]:
    """Rated interactions from ``data_path.interactions_train`` plus every rating in
    ``data_path.feedback_store``, and the store's last feedback id (0 without one)."""
    from langchain_llmrouter.personal.interactions import read_gmt_jsonl, read_personalized_csv

    paths = config.data_path
    if not paths.interactions_train and not paths.feedback_store:
        raise ConfigError(
            "missing: a personalised router trains on users' ratings; give "
            "data_path.interactions_train (GMTRouter JSONL or PersonalizedRouter CSV) or "
            "data_path.feedback_store",
            path=config.source,
            field="data_path.interactions_train",
        )
    interactions: list[Any] = []
    if paths.interactions_train:
        path = config.resolve(paths.interactions_train, what="data_path.interactions_train")
        assert path is not None
        read = read_personalized_csv if path.suffix.lower() == ".csv" else read_gmt_jsonl
        interactions.extend(read(path))
    last = 0
    if paths.feedback_store:
        from langchain_llmrouter.personal.feedback import FeedbackStore

        url: str | Path | None = paths.feedback_store
        if "://" not in paths.feedback_store:
            url = config.resolve(paths.feedback_store, what="data_path.feedback_store")
        assert url is not None
        with FeedbackStore(url) as store:
            last = store.last_id()
            interactions.extend(store.interactions(after_id=0))
    return interactions, last


def model_dir(
    config: RouterConfig, *, for_loading: bool, override: Path | None = None
) -> Path | None:
    """Where the router is saved / loaded from."""
    if override is not None:
        return override
    value = (
        (config.model_path.load_model_path or config.model_path.save_model_path)
        if for_loading
        else config.model_path.save_model_path
    )
    return config.resolve(value, what="model_path", must_exist=False)


def trained_router(
    name: str, config: RouterConfig, pool: CandidatePool, override: Path | None = None
) -> BaseRouter | BaseGraphRouter:
    """The saved router, or an untrained one (a baseline, say) set up from the candidates."""
    from langchain_llmrouter.routers.registry import get_router_class

    cls = get_router_class(name)
    directory = model_dir(config, for_loading=True, override=override)
    if directory is not None and (directory / "router.json").is_file():
        return cls.load(directory, embeddings=config.build_embeddings())
    if not cls.trainable:
        return cls.from_params(
            config.hparam, embeddings=config.build_embeddings(), source=str(config.source)
        ).fit_candidates(pool)
    where = directory or "model_path.load_model_path (not set)"
    raise ConfigError(
        f"no trained {name} at {where}; run `{train_command(name, config, directory)}` first",
        path=config.source,
        field="model_path.load_model_path",
    )


def train_command(name: str, config: RouterConfig, directory: Path | None) -> str:
    """A ``llmrouter train`` command line that saves ``name`` where ``config`` loads it from.

    Looks at ``../train/<name>.yaml`` beside the config's folder (the layout of
    ``configs/``), ``configs/train/<name>.yaml`` under the working directory, then the config
    itself. The first that has training data and saves to ``directory`` wins; else the first
    with training data, told ``--save directory``.
    """
    import os
    import shlex
    import warnings

    own = config.source.resolve() if config.source is not None else None
    options = [] if own is None else [own.parent.parent / "train" / f"{name}.yaml"]
    options.append(Path.cwd() / "configs" / "train" / f"{name}.yaml")
    if own is not None:
        options.append(own)  # last: an inference config may lack a save path

    target = directory.resolve() if directory is not None else None
    usable: list[tuple[Path, Path | None]] = []  # (config, where it saves)
    for option in dict.fromkeys(options):
        if not option.is_file():
            continue
        try:
            with warnings.catch_warnings():  # only a hint: the file's own warnings are noise
                warnings.simplefilter("ignore")
                candidate = load_config(option)
                saves = model_dir(candidate, for_loading=False)
        except Exception:  # an unreadable config is just not a usable hint
            continue
        if (candidate.router or name).lower() != name or not candidate.data_path.routing_data_train:
            continue
        usable.append((option, saves.resolve() if saves is not None else None))

    def shown(path: Path) -> str:
        # Relative to the working directory when below it, as a person would type it.
        relative = os.path.relpath(path)
        return shlex.quote(path.as_posix() if relative.startswith("..") else relative)

    base = f"llmrouter train --router {name} --config "
    for option, saves in usable:
        if saves is not None and saves == target:
            return base + shown(option)
    save = f" --save {shown(target)}" if target is not None else ""
    if usable:
        return base + shown(usable[0][0]) + save
    return base + "TRAIN_CONFIG.yaml" + save


def check_writable(path: Path, *, what: str, directory: bool, source: Path | None = None) -> None:
    """Refuse, before any work, an output that could not be written.

    ``path`` itself may not exist yet: its nearest existing ancestor must then be a
    directory this process can write to (the output's folders are made when it is written).

    Args:
        path: The output file or directory.
        what: The flag or config key that named it, for the message.
        directory: True when ``path`` is a directory to create or fill (a saved router).
        source: The config file that named it, if any.

    Raises:
        ConfigError: naming the flag or key, the path and what was expected.
    """
    import os

    def refuse(message: str) -> ConfigError:
        # A config key is a field of the config file; a command-line flag leads the message.
        if source is None:
            return ConfigError(f"{what}: {message}")
        return ConfigError(message, path=source, field=what)

    kind = "a directory" if directory else "a file"
    if path.exists():
        if directory != path.is_dir():
            got = "a directory" if path.is_dir() else "an existing file"
            raise refuse(f"expected {kind} to write, got {got}: {path}")
        target = path if directory else path.parent
        if not os.access(target, os.W_OK | os.X_OK) or (
            not directory and not os.access(path, os.W_OK)
        ):
            raise refuse(f"cannot write to {path} (permission denied)")
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise refuse(f"cannot create {path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise refuse(f"cannot create {path}: {ancestor} is not writable")


def fail(message: str) -> int:
    """Print an error for a person (no traceback) and return the exit status."""
    print(f"error: {message}", file=sys.stderr)
    return 2
