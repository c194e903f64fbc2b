"""The sections of a domain configuration, as pydantic models.

Every field carries a description and unknown keys are errors (``extra="forbid"``); the
configuration is plain data: nothing here loads a model or touches a file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from index.embedders.config import EmbedderConfig
from index.taxonomy import LabelTaxonomy
from index.vector_store import VectorIndexConfig

NodeKind = Literal["region", "image", "background", "tile"]
#: How a question is answered: photo only, fixed retrieval, or the model choosing its tools.
Mode = Literal["zero-shot", "rag", "agentic"]
#: The modes, baseline first (the order evaluations compare them in).
MODES: tuple[str, ...] = get_args(Mode)
#: The config used when a command is given none.
DEFAULT_CONFIG = "configs/vehicle_damage.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldPattern(_Strict):
    """A regular expression whose named groups become image attributes."""

    source: str = Field(
        description="Where to match: 'image_name' (image file name), 'annotation_name' "
        "(annotation file name), 'image_path' (path relative to the dataset root) or the name "
        "of a top-level annotation field such as 'root'.",
    )
    pattern: str = Field(
        description="Python regular expression with named groups, searched (not anchored) in "
        "the source; e.g. '_(?P<timestamp>\\d{13})_zona_(?P<zone>\\d+)_'.",
    )

    @model_validator(mode="after")
    def _compiles(self) -> FieldPattern:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"pattern {self.pattern!r} does not compile: {exc}") from exc
        if not compiled.groupindex:
            raise ValueError(f"pattern {self.pattern!r} has no named group (?P<name>...)")
        return self


class VehicleGrouping(_Strict):
    """How photos are grouped into one physical object (a vehicle), for honest splits."""

    key: str = Field(
        default="{image_id}",
        description="Template over image attributes naming the group, e.g. '{prefix}'. "
        "'{image_id}' makes every photo its own group.",
    )
    time_field: str | None = Field(
        default=None,
        description="Attribute holding a timestamp; photos with one key whose timestamps are "
        "within `window_s` of the previous photo form one group. None: the key alone groups.",
    )
    time_unit: Literal["ms", "s"] = Field(default="ms", description="Unit of `time_field`.")
    window_s: float = Field(
        default=900.0,
        ge=0,
        description="Largest gap, in seconds, between consecutive shots of one vehicle.",
    )


class DatasetConfig(_Strict):
    """Where the labelled photos are and how to read them."""

    root: Path = Field(default=Path("data"), description="Folder holding images and annotations.")
    format: str = Field(
        default="labelme",
        description="Annotation format: a module in index/dataset/adapters ('labelme', 'coco', "
        "'yolo') or 'package.module:AdapterClass' for an adapter of your own.",
    )
    annotation_file: Path | None = Field(
        default=None,
        description="For one-file formats: the COCO JSON or YOLO data.yaml, relative to `root` "
        "(default: found in `root`; several COCO split files are read together). A `root` "
        "naming a .json/.yaml file sets it: root becomes the file's folder.",
    )
    images_dir: Path | None = Field(
        default=None,
        description="For one-file formats: the image folder, relative to `root` (default: "
        "found from the layout: `root/images`, then `root`).",
    )
    image_extensions: list[str] = Field(
        default=[".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"],
        description="Image file extensions looked for (case-insensitive).",
    )
    flag_fields: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical image flag -> the annotation's own top-level field, e.g. "
        "{doubtful: dudosa, edited: editada, incorrect: incorrecta}.",
    )
    exclude_incorrect: bool = Field(
        default=True,
        description="Skip images whose 'incorrect' flag is true (reported as skips).",
    )
    fields: list[FieldPattern] = Field(
        default_factory=list,
        description="Patterns that parse image attributes (zone, timestamp, vehicle prefix…) "
        "from names and paths; later patterns fill only attributes still missing.",
    )
    vehicle: VehicleGrouping = Field(
        default_factory=VehicleGrouping, description="How photos group into one vehicle."
    )
    line_width: float = Field(
        default=0.004,
        gt=0,
        description="Line and point annotations become ribbons this wide, as a fraction of "
        "the image's longer side.",
    )
    verify_pixels: bool = Field(
        default=False,
        description="Decode every image while reading, to find corrupt files up front "
        "(slow on 12 MP photos; the build finds them anyway).",
    )
    max_image_pixels: int = Field(
        default=100_000_000,
        gt=0,
        description="Images whose header declares more pixels than this are skipped "
        "(too_many_pixels) and never decoded; 100 MP is above any camera photo, and it bounds "
        "what one decoding worker holds in memory.",
    )
    allow_outside_root: bool = Field(
        default=False,
        description="Index images that an annotation names outside `root` (a '../' or an "
        "absolute path). Off: they are skipped as outside_dataset.",
    )

    @model_validator(mode="after")
    def _root_may_name_the_annotation_file(self) -> DatasetConfig:
        """``root: data/x/instances_val.json`` reads that file: root is its folder (text only, no file read).

        LabelMe keeps one JSON per image, so its root stays a folder (and a file is an error).
        """
        if self.root.suffix.lower() in (".json", ".yaml", ".yml") and self.format != "labelme":
            self.annotation_file, self.root = Path(self.root.name), self.root.parent
        return self


class RegionStrategy(_Strict):
    """Which pixels become index nodes. Sizes are fractions of the image's longer side."""

    kinds: list[NodeKind] = Field(
        default=["region", "image", "background"],
        description="Node kinds to produce: 'region' (around each annotated defect), 'image' "
        "(whole photo), 'background' (unannotated surface), 'tile' (a fixed grid).",
    )
    context_margin: float = Field(
        default=0.5,
        ge=0,
        description="Context added around a region's box on each side, as a fraction of the "
        "box's own width/height.",
    )
    min_side: float = Field(
        default=0.06,
        gt=0,
        le=1,
        description="Smallest crop side, as a fraction of the image's longer side "
        "(0.06 of 4000 px = 240 px), so a 20 px scratch keeps its surroundings.",
    )
    square: bool = Field(
        default=True,
        description="Make region crops square (embedders take square inputs) when the image allows.",
    )
    crop_size: int = Field(
        default=384,
        ge=32,
        description="Side in pixels of the stored and embedded region/background/tile crop.",
    )
    merge_distance: float = Field(
        default=0.02,
        ge=0,
        description="Regions of one label whose boxes are closer than this (fraction of the "
        "longer side) merge into one region; 0 turns merging off.",
    )
    merge_max_side: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="A merge never makes a region box longer than this fraction of the longer side.",
    )
    image_max_side: int = Field(
        default=1024, ge=64, description="Longer side in pixels of the stored whole-image node."
    )
    background_per_image: int = Field(
        default=1, ge=0, description="Background crops drawn from unannotated areas per image."
    )
    background_side: float = Field(
        default=0.12, gt=0, le=1, description="Background crop side, fraction of the longer side."
    )
    background_clearance: float = Field(
        default=0.02,
        ge=0,
        description="Least distance between a background crop and any annotation (fraction "
        "of the longer side).",
    )
    tile_grid: tuple[int, int] = Field(
        default=(3, 4),
        description="Rows and columns of the tile grid, used when 'tile' is in `kinds`.",
    )
    seed: int = Field(default=0, description="Seed for background placement.")


class ModelConfig(_Strict):
    """The vision-language model behind an OpenAI-compatible chat endpoint (vLLM, SGLang…)."""

    api_base: str = Field(
        default="http://localhost:8000/v1",
        description="Root of the OpenAI-compatible API, e.g. http://localhost:8000/v1.",
    )
    model: str = Field(default="Qwen/Qwen3-VL-4B-Instruct", description="Model name the server serves.")
    api_key_env: str = Field(
        default="VLM_API_KEY",
        description="Environment variable holding the API key (the key itself never goes in the "
        "YAML, a trace or a log); unset means no key ('EMPTY', as vLLM expects).",
    )
    timeout_s: float = Field(
        default=120.0, gt=0,
        description="Seconds one model request may take in all (a deadline for the whole reply, not per read).",
    )
    max_retries: int = Field(
        default=2, ge=0,
        description="Retries on connection errors, timeouts, 5xx, 429 and malformed replies, with jittered backoff.",
    )
    retry_backoff_s: float = Field(default=1.0, ge=0, description="First backoff; doubles per retry.")
    retry_after_max_s: float = Field(
        default=30.0, ge=0,
        description="Longest Retry-After (429/503) honoured; a server asking for more is reported, not awaited.",
    )
    max_images: int | None = Field(
        default=None, ge=1,
        description="Most images per request (vLLM --limit-mm-per-prompt); none: no limit, as vLLM's "
        "default. Learned from the server's refusal when it has a lower one.",
    )
    max_context_tokens: int | None = Field(
        default=None, ge=1024,
        description="Most prompt tokens per request (vLLM --max-model-len less the reply); none: no "
        "limit. Learned from the server's refusal when it is exceeded.",
    )
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature (0: greedy, reproducible).")
    top_p: float = Field(default=0.8, gt=0, le=1, description="Nucleus sampling (ignored at temperature 0).")
    top_k: int | None = Field(default=20, description="vLLM top_k, sent in extra_body; None to omit.")
    presence_penalty: float = Field(default=0.0, description="Presence penalty (model card: 1.5 for chat).")
    max_tokens: int = Field(default=1500, ge=16, description="Most tokens per reply.")
    context_window: int = Field(default=32768, ge=1024, description="Model context length, in tokens.")
    query_max_pixels: int = Field(
        default=1024 * 768,
        ge=32 * 32,
        description="Pixel budget of the query photo as sent (Qwen3-VL: one token per 32x32 px; "
        "1024x768 is about 768 tokens).",
    )
    example_max_pixels: int = Field(
        default=256 * 256, ge=32 * 32, description="Pixel budget of each example crop or zoom sent."
    )
    zoom_max_pixels: int = Field(
        default=512 * 512, ge=32 * 32, description="Pixel budget of a zoom into the query photo."
    )
    tool_protocol: Literal["auto", "native", "hermes"] = Field(
        default="auto",
        description="'native': tool_calls from the server's parser; 'hermes': tools in the prompt, "
        "<tool_call> parsed from text; 'auto': native, falling back to hermes when the server "
        "rejects tool_choice or answers with <tool_call> text.",
    )
    json_schema: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Ask for the report with response_format json_schema: 'auto' tries and falls "
        "back to extracting JSON from text when the server refuses.",
    )


class AgentConfig(_Strict):
    """How the online analysis runs."""

    mode: Mode = Field(
        default="agentic",
        description="'agentic': the model chooses its tools; 'rag': always retrieve top-k, one call; "
        "'zero-shot': photo and question only.",
    )
    max_tool_calls: int = Field(default=6, ge=0, description="Cap on tool calls per question.")
    k: int = Field(default=3, ge=1, le=20, description="Examples retrieved per search (rag mode and tool default).")
    example_kind: Literal["region", "image", "tile"] = Field(
        default="region", description="Node kind the example tools search."
    )
    exclude_query_photo: bool = Field(
        default=True,
        description="When the query photo is itself one of the indexed photos (same file or same bytes), "
        "never show the model an example cut from it: that example would be the answer.",
    )
    prompts_dir: Path | None = Field(
        default=None,
        description="Folder of your own prompt templates; none: the ones shipped with the package.",
    )
    traces_dir: Path = Field(default=Path("outputs/traces"), description="Where every query writes its trace.")
    language: str = Field(
        default="auto", description="Language of the answer: 'auto' answers in the question's language."
    )


class ServiceConfig(_Strict):
    """``python -m agent serve``: the inspection service and its OpenAI-compatible front door."""

    host: str = Field(
        default="127.0.0.1",
        description="Interface to listen on; 127.0.0.1 (this machine only) unless told otherwise "
        "(0.0.0.0 for every interface, e.g. inside a container).",
    )
    port: int = Field(default=8080, ge=0, le=65535, description="Port to listen on (0: any free port).")
    max_concurrent: int = Field(
        default=4, ge=1, description="Questions answered at once; more wait in the queue."
    )
    max_queue: int = Field(
        default=64, ge=0,
        description="Questions that may wait for a free slot; one more is refused at once with HTTP 503 "
        "and Retry-After.",
    )
    retry_after_s: int = Field(
        default=5, ge=1, description="Seconds a refused client is told to wait (Retry-After of a 503)."
    )
    max_upload_mb: float = Field(
        default=20.0, gt=0,
        description="Largest photo accepted, in MB (decoded bytes; a request body may be 4/3 of it plus "
        "1 MB, for base64 and form fields); bigger uploads get HTTP 413 before anything is read.",
    )
    max_upload_pixels: int = Field(
        default=40_000_000, ge=1,
        description="Largest photo accepted, in pixels (read from its header before it is decoded; a "
        "12 MP photo is well under): more is refused with HTTP 400. dataset.max_image_pixels still "
        "applies when it is lower.",
    )
    api_key_env: str = Field(
        default="DAMAGE_RAG_API_KEY",
        description="Environment variable holding the service's own bearer token: when it is set, every "
        "/v1 route wants 'Authorization: Bearer <token>' (401 otherwise); unset: no token needed. "
        "Not the model's key (model.api_key_env), which never leaves the service.",
    )
    unsupported: Literal["refuse", "passthrough"] = Field(
        default="refuse",
        description="Chat requests the engine cannot answer (no image, several images, an http(s) "
        "image URL, another model's name): 'refuse' answers an OpenAI-style 400; 'passthrough' "
        "forwards them to model.api_base unchanged (a damage-rag model name replaced by model.model).",
    )
    passthrough_image_urls: bool = Field(
        default=False,
        description="With unsupported: passthrough, whether a request holding http(s) image URLs may be "
        "passed upstream (the upstream would fetch them from its own network); false: refused with 400.",
    )


class DomainConfig(_Strict):
    """A whole domain: dataset, taxonomy, region strategy, embedder and index."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$", description="Short dataset name, stored in every node."
    )
    description: str = Field(default="", description="What the domain is, for people and prompts.")
    subject: str = Field(
        default="image",
        description="What one photo shows, for prompts (e.g. 'vehicle').",
    )
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="The labelled data.")
    taxonomy: LabelTaxonomy = Field(description="The labels and their definitions.")
    regions: RegionStrategy = Field(
        default_factory=RegionStrategy, description="Which pixels to embed."
    )
    embedder: EmbedderConfig = Field(
        default_factory=EmbedderConfig, description="The visual embedding model."
    )
    index: VectorIndexConfig = Field(
        default_factory=VectorIndexConfig, description="Where and how vectors are stored."
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The vision-language model.")
    agent: AgentConfig = Field(default_factory=AgentConfig, description="The online analysis.")
    service: ServiceConfig = Field(
        default_factory=ServiceConfig, description="The inspection service (python -m agent serve)."
    )
