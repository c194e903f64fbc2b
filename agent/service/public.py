"""What the service shows of the server's files: a trace's URL, never its path; base names, never
absolute paths; the index and traces folders by name only; no key of the model or of Qdrant.

The CLI prints paths on the user's own machine; over HTTP the same values would tell any caller
(``/readyz`` needs no token) how the server's disk is laid out, so every answer built from the
engine's reports, traces and errors goes through these helpers first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from agent.endpoint_errors import mask_secrets

#: Event keys whose values are files on the server (besides any value that is an absolute path).
PATH_KEYS = frozenset({"path", "photo", "photo_copy", "crop_path", "source_image", "image_path", "file",
                       "index_dir", "traces_dir", "trace"})


def trace_url(trace_id: str) -> str:
    """The trace's URL on this service."""
    return f"/v1/traces/{trace_id}"


def public_report(state: Any, report: Any) -> dict[str, Any]:
    """The report as ``agent ask --json`` prints it (:func:`agent.cli.report_json`), with
    ``trace`` the trace's URL on this service instead of the file's path on the server."""
    from agent.cli import report_json

    failure = state.engine.trace_failure(report.trace_id)
    payload = report_json(report, state.traces_dir, failure)
    if payload["trace"] is not None:
        payload["trace"] = trace_url(report.trace_id)
    return payload


def _is_absolute(text: str) -> bool:
    if not text or "\n" in text or len(text) > 4096 or "://" in text:
        return False
    if PureWindowsPath(text).is_absolute() and len(PureWindowsPath(text).parts) > 2:
        return True
    return PurePosixPath(text).is_absolute() and text.count("/") >= 2


def base_name(text: str) -> str:
    """The last part of a path (either separator)."""
    return PureWindowsPath(text).name if "\\" in text else PurePosixPath(text).name


@dataclass(frozen=True)
class Redactor:
    """Rewrites text for callers: each known folder's absolute path becomes its name, the keys
    named by ``secret_envs`` (and any bearer token) become ``***``."""

    folders: tuple[tuple[str, str], ...] = ()
    secret_envs: tuple[str, ...] = ()

    @classmethod
    def for_engine(cls, engine: Any) -> Redactor:
        """The index folder, the traces folder and the dataset's root by name; the model's and
        Qdrant's keys masked."""
        config = engine.config
        folders: dict[str, str] = {}
        candidates = [engine.index_dir, config.agent.traces_dir, getattr(config.dataset, "root", None)]
        for folder in candidates:
            if not folder:
                continue
            path = Path(folder)
            for spelling in {str(path), str(path.absolute()), str(path.resolve())}:
                if len(spelling) > 1 and Path(spelling).is_absolute():
                    folders[spelling.rstrip("/\\")] = path.resolve().name or spelling
        envs = [config.model.api_key_env, getattr(getattr(config.index, "qdrant", None), "api_key_env", None)]
        ordered = tuple(sorted(folders.items(), key=lambda item: -len(item[0])))  # the longest spelling first
        return cls(ordered, tuple(env for env in envs if env))

    def __call__(self, text: str) -> str:
        """``text`` as a caller may read it."""
        for folder, name in self.folders:
            text = text.replace(folder, name)
        for env in self.secret_envs:
            text = mask_secrets(text, env)
        if not self.secret_envs:
            text = mask_secrets(text)
        return text

    def events(self, events: list[dict[str, Any]], keep_files: bool = False) -> list[dict[str, Any]]:
        """A trace's events with every path cut to its base name: the values of :data:`PATH_KEYS`
        and any string that is an absolute path; known folders named in other text.

        With ``keep_files``, the image files the HTML view reads server-side (the ``photo``
        event's ``photo_copy``, each ``images_sent`` image's ``path``) stay as they are: the page
        shows them as data URIs and never prints them.
        """
        out = []
        for event in events:
            public = self._walk(event)
            if keep_files and event.get("type") == "photo" and "photo_copy" in event:
                public["photo_copy"] = event["photo_copy"]
            if keep_files and event.get("type") == "images_sent" and isinstance(event.get("images"), list):
                for shown, raw in zip(public["images"], event["images"], strict=True):
                    if isinstance(shown, dict) and isinstance(raw, dict) and "path" in raw:
                        shown["path"] = raw["path"]
            out.append(public)
        return out

    def _walk(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: self._walk(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, key) for v in value]
        if not isinstance(value, str):
            return value
        if _is_absolute(value) or (key in PATH_KEYS and ("/" in value or "\\" in value) and "://" not in value):
            return base_name(value)
        return self(value)
