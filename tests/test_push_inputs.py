"""Pure checks of the push's inputs: repo ids, descriptions, folders, layout, redaction, metadata, plans."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import make_dataset_folder
from huggingface_hub import CommitOperationAdd
from huggingface_hub import constants as hf_constants
from pydantic import SecretStr

from tasks.card.options import CardOptions
from tasks.credentials import MASKED, HuggingFaceCredentials, InvalidTokenError, MissingTokenError, resolve_token
from tasks.dataset_folder import DatasetFolderError, scan_dataset_folder
from tasks.file_digest import DigestCache, compute_digest
from tasks.hub_commit import CommitOutcome, CommitRecord, preupload_groups
from tasks.hub_limits import repo_shape_advice
from tasks.hub_metadata import hub_metadata
from tasks.push_parameters import check_push_parameters
from tasks.redaction import REDACTED, redact_secrets
from tasks.repo_layout import repo_path
from tasks.stage_plan import (
    STAGES,
    commit_message,
    parts,
    plan_content_stage,
    plan_files_stage,
    planned_repo_paths,
)
from tasks.stages import StageResult, render_folder_card
from tasks.validation import InvalidParameterError, validate_description, validate_repo_id


@pytest.mark.parametrize(
    ("repo_id", "fragment"),
    [
        ("noslash", "exactly one '/'"),
        ("a/b/c", "exactly one '/'"),
        ("", "empty"),
        ("alice/..x", "'..'"),
        ("alice/a--b", "'--'"),
        ("alice/" + "x" * 97, "longer than 96"),
        ("alice/bad name", "letters, digits"),
        ("alice/", "empty name"),
        ("alice/ds.git", ".git"),
        ("alice/-ds", "start or end"),
    ],
)
def test_bad_repo_ids_are_named(repo_id: str, fragment: str) -> None:
    with pytest.raises(InvalidParameterError, match="repo_id") as info:
        validate_repo_id(repo_id)
    assert fragment in str(info.value)


def test_good_repo_id_and_description() -> None:
    assert validate_repo_id("alice/my_data-1.0") == "alice/my_data-1.0"
    assert validate_description("  A dataset.  ") == "A dataset."
    with pytest.raises(InvalidParameterError, match="description"):
        validate_description("   ")


@pytest.mark.parametrize(
    ("description", "opened"),
    [
        ("Greetings.\n<!-- never closed", "an HTML comment"),
        ("Greetings.\n<pre>", "a <pre> block"),
        ("Greetings.\n```\nprint('hi')", "a code block"),
        ("Greetings.\n~~~~\ncode\n~~~", "a code block"),  # a shorter fence does not close it
    ],
)
def test_a_description_that_would_hide_the_rest_of_the_card_is_refused(description: str, opened: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"description opens {opened}.* would be hidden"):
        validate_description(description)


def test_a_description_with_closed_blocks_is_kept() -> None:
    text = "Greetings.\n\n```python\nprint('hi')\n```\n<!-- a note -->\n<pre>x</pre>\nInline `code` <!-- too."
    assert validate_description(text) == text


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("license", "MIT", "license 'MIT' is not a Hub license identifier"),
        ("license", "Apache 2.0", "lowercase, with '-' for spaces"),
        ("language", ["en", "English"], "language 'English' is not a language code"),
        ("language", ["english"], "language 'english' is not a language code"),
        ("language", ["chinese"], "language 'chinese' is not a language code"),
        ("language", ["en us"], "ISO 639 codes"),
        ("task_categories", ["Text Generation"], "not a Hub task id: .* \\(perhaps 'text-generation'\\)"),
        ("task_categories", ["text_generation"], "perhaps 'text-generation'"),
    ],
)
def test_card_vocabulary_that_the_hub_cannot_take_is_named(field: str, value: Any, fragment: str) -> None:
    with pytest.raises(InvalidParameterError, match=fragment):
        check_push_parameters("alice/ds", "A dataset.", **{field: value})


def test_card_vocabulary_in_hub_form_is_kept() -> None:
    _, card, _ = check_push_parameters(
        "alice/ds",
        "A dataset.",
        license=" openrail++ ",
        language=["en", "zh-Hans", "en", " ", "multilingual"],
        task_categories=["text-generation", "question-answering"],
    )
    assert card.license == "openrail++"
    assert card.language == ["en", "zh-Hans", "multilingual"]
    assert card.task_categories == ["text-generation", "question-answering"]
    assert CardOptions(repo_id="alice/ds", description="d", license="  ").license is None


def test_scan_finds_every_part(tmp_path: Path) -> None:
    folder = scan_dataset_folder(make_dataset_folder(tmp_path / "ds", batches=3, rows_per_batch=7))
    assert [p.name for p in folder.data_files] == [
        "batch_00000.parquet",
        "batch_00001.parquet",
        "batch_00002.parquet",
    ]
    assert folder.num_records == 21
    assert [(p.name, p.single_file, len(p.files)) for p in folder.processors] == [
        ("conversations", False, 3),
        ("summary", True, 1),
    ]
    assert len(folder.images) == 3
    assert folder.builder_config is not None and folder.metadata is not None


def _expect_folder_error(path: Path, fragment: str) -> None:
    with pytest.raises(DatasetFolderError) as info:
        scan_dataset_folder(path)
    assert fragment in str(info.value), str(info.value)


def test_folder_problems_are_named(tmp_path: Path) -> None:
    _expect_folder_error(tmp_path / "missing", "does not exist")
    (tmp_path / "file").write_text("x")
    _expect_folder_error(tmp_path / "file", "is a file")
    (tmp_path / "empty" / "parquet-files").mkdir(parents=True)
    _expect_folder_error(tmp_path / "empty", "no .parquet files")

    corrupt = make_dataset_folder(tmp_path / "corrupt", processor_dir=None, processor_file=None)
    (corrupt / "parquet-files" / "batch_00001.parquet").write_bytes(b"not parquet at all")
    _expect_folder_error(corrupt, "batch_00001.parquet is not a readable parquet file")

    mismatch = make_dataset_folder(tmp_path / "mismatch", processor_dir=None, processor_file=None)
    pq.write_table(pa.table({"other": [1]}), mismatch / "parquet-files" / "batch_00009.parquet")
    _expect_folder_error(mismatch, "batch_00009.parquet in parquet-files does not have the columns of")

    nested = make_dataset_folder(tmp_path / "nested", processor_dir=None, processor_file=None)
    (nested / "parquet-files" / "retry").mkdir()
    (nested / "parquet-files" / "batch_00001.parquet").rename(nested / "parquet-files" / "retry" / "b.parquet")
    _expect_folder_error(nested, "parquet-files/retry/b.parquet is in a subfolder of parquet-files/")

    # A column all null in a later batch (Arrow type null, as pandas writes it) matches the other batches' type;
    # all null in the first batch, whose types `datasets` reads, it is refused; a real type conflict names the
    # column and both types.
    nulls = make_dataset_folder(tmp_path / "nulls", batches=2, processor_dir=None, processor_file=None)
    first = pq.read_table(nulls / "parquet-files" / "batch_00000.parquet")
    second = pq.read_table(nulls / "parquet-files" / "batch_00001.parquet")
    column = first.schema.names[1]
    pq.write_table(
        second.set_column(1, column, pa.nulls(len(second))), nulls / "parquet-files" / "batch_00001.parquet"
    )
    scanned = scan_dataset_folder(nulls)
    card = render_folder_card(scanned, CardOptions(repo_id="alice/nulls", description="Nulls."))
    assert f"| `{column}` | `{first.schema.field(column).type}` |" in card  # the batches' type, not null
    assert "| 20 (50.0%) |" in card  # the null batch's 20 rows counted as nulls
    pq.write_table(second, nulls / "parquet-files" / "batch_00001.parquet")
    pq.write_table(
        first.set_column(1, column, pa.nulls(len(first))), nulls / "parquet-files" / "batch_00000.parquet"
    )
    _expect_folder_error(
        nulls, f"batch_00000.parquet: column {column!r} is all null (Arrow type null) in this first"
    )
    pq.write_table(
        first.set_column(1, column, pa.array(range(len(first)))), nulls / "parquet-files" / "batch_00000.parquet"
    )
    _expect_folder_error(nulls, f"column {column!r} is {first.schema.field(column).type}, but int64")

    # An empty batch (data or processor) would make its config unloadable.
    empty = make_dataset_folder(tmp_path / "empty", batches=2, processor_dir=None, processor_file=None)
    pq.write_table(first.slice(0, 0), empty / "parquet-files" / "batch_00001.parquet")
    _expect_folder_error(empty, "parquet-files/batch_00001.parquet has no rows")

    # A processor named "default" would be a second default config besides the data config.
    default = make_dataset_folder(tmp_path / "default", processor_dir=None, processor_file=None)
    (default / "processors-files" / "default").mkdir(parents=True)
    pq.write_table(pa.table({"a": [1]}), default / "processors-files" / "default" / "batch_00000.parquet")
    _expect_folder_error(default, "takes a config named 'default' as the default one")

    bad_json = make_dataset_folder(tmp_path / "badjson")
    (bad_json / "metadata.json").write_text("{not json")
    _expect_folder_error(bad_json, "metadata.json is not valid JSON")
    (bad_json / "metadata.json").write_text("[1, 2]")
    _expect_folder_error(bad_json, "metadata.json must hold a JSON object")

    bad_builder = make_dataset_folder(tmp_path / "badbuilder")
    (bad_builder / "builder_config.json").write_text("{")
    _expect_folder_error(bad_builder, "builder_config.json is not valid JSON")


def test_escaping_symlinks_and_reserved_names(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("do not upload")
    linked = make_dataset_folder(tmp_path / "linked")
    os.symlink(outside, linked / "images" / "avatar" / "leak.png")
    _expect_folder_error(linked, "points outside the dataset folder")

    for name in ("data", "images", "README.md", "metadata.json", ".gitattributes"):
        reserved = make_dataset_folder(tmp_path / f"reserved-{name}", processor_dir=None, processor_file=None)
        target = reserved / "processors-files" / (name if "." in name else f"{name}.parquet")
        target.parent.mkdir(exist_ok=True)
        if "." in name:
            target.mkdir()
            pq.write_table(pa.table({"a": [1]}), target / "batch_00000.parquet")
        else:
            pq.write_table(pa.table({"a": [1]}), target)
        _expect_folder_error(reserved, "reserved repo path")


def test_scan_follows_no_folder_link_and_skips_hidden_files(tmp_path: Path) -> None:
    folder = make_dataset_folder(tmp_path / "ds", images=2)
    avatar = folder / "images" / "avatar"
    first = sorted(avatar.iterdir())[0]
    os.symlink(avatar, folder / "images" / "alias")  # a linked folder inside: its files are pushed once
    os.symlink(first, avatar / "copy.png")  # a linked file inside: pushed under the link's name
    (avatar / ".thumbs.png").write_bytes(b"x")
    (folder / "images" / "nested" / "deep").mkdir(parents=True)
    (folder / "images" / "nested" / "deep" / "x.png").write_bytes(b"x")
    scanned = scan_dataset_folder(folder)
    originals = [f"images/avatar/{p.name}" for p in avatar.iterdir() if p.name[0] not in "c."]
    assert len(originals) == 2
    assert [scanned.relative(p) for p in scanned.images] == sorted(
        [*originals, "images/avatar/copy.png", "images/nested/deep/x.png"]
    )
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", folder / "images" / "out")
    _expect_folder_error(folder, "points outside the dataset folder")
    (folder / "images" / "out").unlink()
    (folder / "images" / ".cache").mkdir()
    (folder / "images" / ".cache" / "x.png").write_bytes(b"x")
    _expect_folder_error(folder, "'.cache' segments")


def test_non_utf8_and_long_names(tmp_path: Path) -> None:
    folder = make_dataset_folder(tmp_path / "names", processor_dir=None, processor_file=None)
    bad = os.path.join(os.fsencode(folder / "images" / "avatar"), b"\xff\xfe.png")
    with open(bad, "wb") as fh:
        fh.write(b"x")
    _expect_folder_error(folder, "not valid UTF-8")
    os.remove(bad)
    long_dir = folder / "images" / "avatar"
    (long_dir / ("a" * 250 + ".png")).write_bytes(b"x")
    for i in range(5):
        long_dir = long_dir / ("d" * 200 + str(i))
        long_dir.mkdir()
    (long_dir / "x.png").write_bytes(b"x")
    _expect_folder_error(folder, "too long")


def test_repo_layout() -> None:
    assert repo_path("parquet-files/batch_00003.parquet") == "data/batch_00003.parquet"
    assert repo_path("processors-files/conv/batch_00000.parquet") == "conv/batch_00000.parquet"
    assert repo_path("processors-files\\conv\\batch_00000.parquet") == "conv/batch_00000.parquet"
    assert repo_path("processors-files/summary.parquet") == "summary/summary.parquet"
    assert repo_path("images/avatar/a.png") == "images/avatar/a.png"
    assert repo_path("builder_config.json") is None
    # Paths are relative to the dataset folder: the layout folder is the first segment, never one further in (an
    # image column named like a layout folder stays an image; a URL or another folder's path is not a file here).
    assert repo_path("images/parquet-files/a.png") == "images/parquet-files/a.png"
    assert repo_path("thumbnails/images/a.jpg") is None
    assert repo_path("https://example.com/images/cat.png") is None


def test_a_masked_token_parameter_falls_back_to_the_next_source(monkeypatch: pytest.MonkeyPatch) -> None:
    # A retried run gets its recorded parameters back: a token passed as one comes back as Prefect's mask.
    monkeypatch.setenv("HF_TOKEN", "hf_from_the_environment")
    assert resolve_token(SecretStr(MASKED)) == "hf_from_the_environment"
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", "/nonexistent/token")  # no cached login either
    with pytest.raises(MissingTokenError, match="recorded masked, so a retried run does not have it"):
        resolve_token(MASKED)


def test_tokens_lose_line_breaks_and_spaces_around_them_as_huggingface_hub_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A secret mounted from a file or a .env line often ends with a newline, which no HTTP header may hold.
    monkeypatch.setenv("HF_TOKEN", " hf_from_the_environment\r\n")
    assert resolve_token() == "hf_from_the_environment"
    assert resolve_token(SecretStr("hf_explicit\n")) == "hf_explicit"
    assert resolve_token(None, HuggingFaceCredentials(token=SecretStr("  hf_block \n"))) == "hf_block"
    assert resolve_token(" \n", HuggingFaceCredentials(token=SecretStr("\n"))) == "hf_from_the_environment"


@pytest.mark.parametrize("bad", ["hf_two words", "hf_tab\there", "hf_caf\u00e9", "hf_del\x7fx"])
def test_a_token_no_header_can_hold_is_refused_without_being_echoed(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    with pytest.raises(InvalidTokenError, match="from token=") as explicit:
        resolve_token(SecretStr(bad))
    monkeypatch.setenv("HF_TOKEN", bad)
    with pytest.raises(InvalidTokenError, match="from HF_TOKEN or the saved login") as from_env:
        resolve_token()
    for error in (explicit, from_env):
        assert bad not in str(error.value) and bad[3:] not in str(error.value)


def test_redaction_keeps_counters_and_env_var_names() -> None:
    config = {
        "model_configs": [
            {"alias": "w", "api_key": "sk-live-abcdefghijklmnop", "inference_parameters": {"max_tokens": 100}},
            {"alias": "n", "api_key": "NVIDIA_API_KEY"},
        ],
        "seed": {"hf_token": "hf_abcdefghijklmnopqrstuvwx", "note": "uses hf_abcdefghijklmnopqrstuvwx inline"},
        "headers": {"Authorization": "Bearer xyz"},
        "prompt": "mention secret-token-value-42 here",
    }
    clean = redact_secrets(config, known_secrets=["secret-token-value-42"])
    text = json.dumps(clean)
    assert "sk-live" not in text and "hf_abcdef" not in text and "xyz" not in text and "value-42" not in text
    assert clean["model_configs"][0]["inference_parameters"]["max_tokens"] == 100
    assert clean["model_configs"][1]["api_key"] == "NVIDIA_API_KEY"
    assert clean["model_configs"][0]["api_key"] == REDACTED
    assert config["model_configs"][0]["api_key"] == "sk-live-abcdefghijklmnop"  # the input is untouched


def test_redaction_matches_credential_keys_however_spelled() -> None:
    providers = [
        {"name": "azure", "api_key": "AZURE_OPENAI_API_KEY", "extra_headers": {"api-key": "3f9c2b7e5d1a4c8b9e0f"}},
        {"name": "gateway", "extra_headers": {"X-API-Key": "gw_live_51HxQ2eZvKYlo2C9"}},
        {"name": "bedrock", "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG", "secret_key": "s3cr3t-v4lue-1234"},
        {"name": "google", "api_keys": ["AIzaSyD-9tSrke72PouQMnMX"], "hfToken": "abc123def456"},
        {"name": "upper", "api_key": "PK1A2B3C4D5E6F7G8H9J"},  # all caps, but no environment variable name
    ]
    clean = redact_secrets({"model_providers": providers})["model_providers"]
    assert clean[0] == {"name": "azure", "api_key": "AZURE_OPENAI_API_KEY", "extra_headers": {"api-key": REDACTED}}
    assert clean[1]["extra_headers"] == {"X-API-Key": REDACTED}
    assert clean[2]["aws_secret_access_key"] == clean[2]["secret_key"] == REDACTED
    assert clean[3]["api_keys"] == [REDACTED] and clean[3]["hfToken"] == REDACTED
    assert clean[4]["api_key"] == REDACTED
    # Counters, a tokenizer's tokens and ordinary keys stay.
    kept = {"max_tokens": 5, "max_new_tokens": 9, "eos_token": "</s>", "sort_key": "id", "key": "a", "tokens": 3}
    assert redact_secrets(kept) == kept


def test_hub_metadata_rewrites_paths_and_keeps_unknown_keys(tmp_path: Path) -> None:
    root = make_dataset_folder(tmp_path / "ds", batches=2)
    meta = json.loads((root / "metadata.json").read_text())
    meta["file_paths"]["parquet-files"] = [str(root / "parquet-files" / "batch_00000.parquet")]  # absolute, stale
    meta["api_key"] = "sk-abcdefghijklmnopqrstuv"
    (root / "metadata.json").write_text(json.dumps(meta))
    before = (root / "metadata.json").read_bytes()
    out = hub_metadata(scan_dataset_folder(root), known_secrets=["hf_tok_123456"])
    assert out["file_paths"]["parquet-files"] == ["data/batch_00000.parquet", "data/batch_00001.parquet"]
    assert out["file_paths"]["processor-files"] == {
        "conversations": ["conversations/batch_00000.parquet", "conversations/batch_00001.parquet"],
        "summary": ["summary/summary.parquet"],
    }
    assert out["some_future_key"] == {"kept": True}
    assert out["api_key"] == REDACTED
    assert (root / "metadata.json").read_bytes() == before


def test_hub_metadata_uploads_no_path_of_the_users_machine(tmp_path: Path) -> None:
    root = make_dataset_folder(tmp_path / "ds", batches=1)
    here = scan_dataset_folder(root).root  # the resolved folder, as the push sees it
    image = next((here / "images" / "avatar").iterdir())
    shouted = image.with_suffix(".PNG")
    image.rename(shouted)
    meta = json.loads((root / "metadata.json").read_text())
    meta["run"] = {
        "dataset_path": str(here),
        "dataset_dir": f"{here}/",
        "log": str(here / "generation.log"),
        "first_batch": str(here / "parquet-files" / "batch_00000.parquet"),
        "image": str(shouted),
        "seed_file": "/home/me/elsewhere/foo.parquet",
        "artifact_path": str(here.parent),
        "windows": "C:\\Users\\me\\elsewhere\\foo.parquet",
    }
    (root / "metadata.json").write_text(json.dumps(meta))
    out = hub_metadata(scan_dataset_folder(root))
    outside = "<local path outside the dataset>"
    assert out["run"] == {
        "dataset_path": ".",
        "dataset_dir": ".",
        "log": "generation.log",
        "first_batch": "data/batch_00000.parquet",
        "image": f"images/avatar/{shouted.name}",
        "seed_file": outside,
        "artifact_path": outside,
        "windows": outside,
    }
    text = json.dumps(out)
    assert str(tmp_path) not in text and str(here) not in text and "/home/me" not in text and "Users" not in text


def test_hub_metadata_file_paths_list_only_what_the_push_uploads(tmp_path: Path) -> None:
    # Newer Data Designer, with preserve_dropped_columns, also lists dropped-columns-parquet-files/: not pushed.
    root = make_dataset_folder(tmp_path / "ds", batches=1, processor_file=None)
    (root / "dropped-columns-parquet-files").mkdir()
    pq.write_table(pa.table({"x": [1]}), root / "dropped-columns-parquet-files" / "batch_00000.parquet")
    meta = json.loads((root / "metadata.json").read_text())
    meta["preserve_dropped_columns"] = True
    meta["file_paths"]["dropped-columns-parquet-files"] = ["dropped-columns-parquet-files/batch_00000.parquet"]
    image = sorted((root / "images" / "avatar").iterdir())[0]
    meta["file_paths"]["images"] = [str(image), "images/avatar/deleted-since.png"]  # a key listing pushed files
    (root / "metadata.json").write_text(json.dumps(meta))
    folder = scan_dataset_folder(root)
    on_hub = {"data": ["data/batch_00000.parquet"], "conversations": ["conversations/batch_00000.parquet"]}
    for out in (hub_metadata(folder), hub_metadata(folder, repo_files=on_hub)):
        assert out["file_paths"] == {
            "parquet-files": ["data/batch_00000.parquet"],
            "processor-files": {"conversations": ["conversations/batch_00000.parquet"]},
            "images": [f"images/avatar/{image.name}"],  # an entry naming a pushed file is kept, in the repo layout
        }
        assert out["preserve_dropped_columns"] is True  # the key is kept: it says how the data was made


def test_hub_metadata_rewrites_paths_not_text(tmp_path: Path) -> None:
    root = make_dataset_folder(tmp_path / "ds", batches=1)
    meta = json.loads((root / "metadata.json").read_text())
    text = [
        "Photo of a cat: https://example.com/images/cat.png",
        "https://example.com/images/cat.png",
        "thumbnails/images/a.jpg",
        "see parquet-files/batch_00000.parquet",
        "/imagine a cat on the moon",
        "first line\n/home/me/elsewhere/foo.parquet",
        "",
    ]
    meta["column_statistics"][0]["sample_values"] = text
    meta["column_statistics"][0]["sources"] = [
        "parquet-files/batch_00000.parquet",
        "processors-files\\conversations\\batch_00000.parquet",
        "processors-files/summary.parquet",
        "images/avatar/00000000-0000-4000-8000-000000000000.png",
    ]
    (root / "metadata.json").write_text(json.dumps(meta))
    out = hub_metadata(scan_dataset_folder(root))
    assert out["column_statistics"][0]["sample_values"] == text
    assert out["column_statistics"][0]["sources"] == [
        "data/batch_00000.parquet",
        "conversations/batch_00000.parquet",
        "summary/summary.parquet",
        "images/avatar/00000000-0000-4000-8000-000000000000.png",
    ]


def test_stage_plans(tmp_path: Path) -> None:
    folder = scan_dataset_folder(make_dataset_folder(tmp_path / "ds", batches=2))
    data = plan_files_stage("data", folder)
    assert [f.path_in_repo for f in data[0].files] == ["data/batch_00000.parquet", "data/batch_00001.parquet"]
    assert data[0].scope == "data" and data[0].message == "Upload main dataset files"
    procs = plan_files_stage("processors", folder, {"processors": "Refresh {name}"})
    assert [(p.label, p.scope, p.message) for p in procs] == [
        ("processors-conversations", "conversations", "Refresh conversations"),
        ("processors-summary", "summary", "Refresh summary"),
    ]
    assert [f.path_in_repo for f in procs[1].files] == ["summary/summary.parquet"]
    assert plan_files_stage("images", folder)[0].scope == "images"
    bare = scan_dataset_folder(
        make_dataset_folder(tmp_path / "bare", images=0, processor_dir=None, processor_file=None)
    )
    assert plan_files_stage("images", bare) == [] and plan_files_stage("processors", bare) == []
    card = plan_content_stage("card", b"---\n---\n")
    assert card.files[0].path_in_repo == "README.md" and card.scope is None
    assert commit_message("metadata", None) == "Upload metadata.json"
    assert parts(250, 100) == 3 and parts(0, 100) == 1
    assert STAGES == ("card", "data", "images", "processors", "builder_config", "metadata")
    assert sorted(planned_repo_paths(folder)) == sorted(
        ["README.md", "metadata.json", "builder_config.json", "summary/summary.parquet"]
        + [f"{d}/batch_{b:05d}.parquet" for d in ("data", "conversations") for b in range(2)]
        + [f"images/avatar/{p.name}" for p in folder.images]
    )
    assert "builder_config.json" not in planned_repo_paths(
        scan_dataset_folder(make_dataset_folder(tmp_path / "no-config", builder_config=False))
    )


def test_repo_shape_advice_names_each_folder_past_the_hubs_limit_and_the_repo() -> None:
    paths = ["README.md", "data/batch_00000.parquet"] + [f"images/portrait/{i:05d}.png" for i in range(10_000)]
    (advice,) = repo_shape_advice(paths)
    assert advice.startswith("images/portrait/ would hold 10,000 entries") and "subfolders" in advice
    assert repo_shape_advice(paths[:-1]) == []  # 9,999: within the advice
    # Subfolders count as entries of their folder; a file counts once, however often it is named.
    nested = [f"images/c{i:05d}/a.png" for i in range(10_000)] + ["README.md"] * 3
    assert [a.split(" would")[0] for a in repo_shape_advice(nested)] == ["images/"]
    # 100,000 files in folders of 1,000: only the repo's count is past the advice.
    spread = [f"images/c{i // 1000:03d}/{i}.png" for i in range(100_000)]
    (repo_advice,) = repo_shape_advice(spread)
    assert repo_advice.startswith("The push puts 100,000 files in the repo") and "fewer, larger" in repo_advice
    root = repo_shape_advice([f"f{i}" for i in range(4)] + ["data/a"], files_per_repo=10, entries_per_folder=5)
    assert root == [root[0]] and root[0].startswith("The repo root would hold 5 entries")


def test_digest_cache_detects_same_size_edits(tmp_path: Path) -> None:
    cache = DigestCache(tmp_path / "d.sqlite")
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    old = time.time() - 10
    os.utime(path, (old, old))
    first = cache.digest(path)
    assert first == compute_digest(path)
    path.write_bytes(b"b" * 100)  # same size; new mtime
    assert cache.digest(path).sha256 == compute_digest(path).sha256 != first.sha256
    # Rewritten in place with its old mtime put back (cp -p, rsync -t): the ctime tells.
    os.utime(path, (old, old))
    assert cache.digest(path).sha256 == compute_digest(path).sha256
    path.write_bytes(b"c" * 100)
    os.utime(path, (old, old))
    assert cache.digest(path).sha256 == compute_digest(path).sha256 != first.sha256
    from huggingface_hub.utils.sha import git_hash

    assert compute_digest(path).git_sha1 == git_hash(b"c" * 100)
    # A link is read through: an edit of its target, same size, old mtime put back, is seen from the link.
    link = tmp_path / "link.bin"
    os.symlink(path, link)
    assert cache.digest(link) == compute_digest(path)
    path.write_bytes(b"d" * 100)
    os.utime(path, (old, old))
    assert cache.digest(link).sha256 == compute_digest(path).sha256 != first.sha256


def test_card_cache_renders_once_per_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.card_cache import cached_card

    monkeypatch.setenv("HFDS_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []

    def render(text: str) -> Any:
        return lambda: calls.append(text) or text

    assert cached_card("key-a", render("card A")) == "card A"
    assert cached_card("key-a", render("something else")) == "card A"  # same content: not rendered again
    assert cached_card("key-b", render("card B")) == "card B"
    assert calls == ["card A", "card B"]

    # An upgraded renderer (here: its default template edited) renders again instead of serving the old card.
    import shutil

    import tasks.card_cache as card_cache

    package = tmp_path / "card"
    shutil.copytree(card_cache.CARD_PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(card_cache, "CARD_PACKAGE", package)
    card_cache.renderer_fingerprint.cache_clear()
    assert cached_card("key-a", render("card A, same renderer")) == "card A"
    template = package / "templates" / "dataset_card.md.j2"
    template.write_text(template.read_text() + "\nNew footer.\n")
    card_cache.renderer_fingerprint.cache_clear()
    assert cached_card("key-a", render("card A, new template")) == "card A, new template"
    card_cache.renderer_fingerprint.cache_clear()  # the real package again for later tests (after monkeypatch undo)


def test_card_cache_keeps_the_cards_used_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nightly run with a new seed stores a new card every night: the cache keeps a bounded number, dropping the
    card used longest ago (it grew by one file a night, without end)."""
    import tasks.card_cache as card_cache

    monkeypatch.setenv("HFDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(card_cache, "MAX_CARDS", 3, raising=False)  # raising: the old code had none
    calls: list[str] = []

    def render(text: str) -> Any:
        return lambda: calls.append(text) or text

    night = time.time() - 10 * 86400
    for i in range(3):  # three nights ago, two nights ago, last night
        card_cache.cached_card(f"night-{i}", render(f"card {i}"))
        os.utime(card_cache._path(f"night-{i}"), (night + i * 86400, night + i * 86400))
    assert card_cache.cached_card("night-0", render("again")) == "card 0"  # a hit: now the card used last
    card_cache.cached_card("tonight", render("card tonight"))
    assert len(list((tmp_path / "cache" / "cards").iterdir())) == 3
    assert not card_cache._path("night-1").exists()  # the one used longest ago
    assert card_cache.cached_card("night-1", render("card 1 again")) == "card 1 again"
    assert card_cache.cached_card("night-0", render("again")) == "card 0"
    assert calls == ["card 0", "card 1", "card 2", "card tonight", "card 1 again"]


def test_pull_request_notes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.opened_pull_request as notes
    from tasks.hub_commit import HubTarget

    monkeypatch.setenv("HFDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(notes, "MAX_NOTES", 2, raising=False)
    target = HubTarget(repo_id="alice/greetings", create_pr=True)
    for night in range(4):
        notes.remember_pull_request(f"run-{night}", target, f"refs/pr/{night + 1}")
        os.utime(notes._file(notes._key(f"run-{night}", target)), (night, night))
    assert sorted(p.read_text() for p in (tmp_path / "cache" / "pull-requests").iterdir()) == [
        "refs/pr/3",
        "refs/pr/4",
    ]


def test_a_cache_folder_that_cannot_be_made_costs_only_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A container's read-only home; a file in the way does it here even as root (which ignores permissions).
    (tmp_path / "home").write_text("not a folder")
    monkeypatch.setenv("HFDS_CACHE_DIR", str(tmp_path / "home" / "cache"))
    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    assert DigestCache().digest(path) == compute_digest(path)
    from tasks.card_cache import cached_card

    assert cached_card("key", lambda: "card") == "card"


def test_digest_many_matches_single_digests(tmp_path: Path) -> None:
    cache = DigestCache(tmp_path / "d.sqlite")
    paths = []
    for i in range(5):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(bytes([i]) * (i + 1))
        old = time.time() - 10
        os.utime(path, (old, old))
        paths.append(path)
    assert cache.digest_many(paths) == [compute_digest(p) for p in paths]
    assert cache.digest_many(paths[::-1]) == [compute_digest(p) for p in paths[::-1]]  # now from the table


def test_the_push_flow_imports_no_card_renderer() -> None:
    """A push whose card is cached never renders one, so loading the flow must not import the renderer's
    dependencies (Jinja2, pyarrow.compute, and pandas, which pyarrow imports on first use): 0.3-0.4 s of every CLI
    run here."""
    import subprocess
    import sys

    heavy = ["tasks.card.render", "tasks.card.statistics", "jinja2", "pandas", "pyarrow.compute"]
    code = f"import sys, flows.push; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_preupload_groups_keep_order_and_limits() -> None:
    ops = [CommitOperationAdd(path_in_repo=f"data/{i}.parquet", path_or_fileobj=b"x" * size)
           for i, size in enumerate([10, 10, 50, 1, 1, 1, 1, 200, 1])]  # fmt: skip
    groups = preupload_groups(ops, max_files=4, max_bytes=60)
    assert [[op.path_in_repo for op in g] for g in groups] == [
        ["data/0.parquet", "data/1.parquet", "data/2.parquet"],  # 70 bytes: closed by size
        ["data/3.parquet", "data/4.parquet", "data/5.parquet", "data/6.parquet"],  # closed by count
        ["data/7.parquet"],  # one file above the byte limit is a group of its own
        ["data/8.parquet"],
    ]
    assert preupload_groups([]) == []
    assert len(preupload_groups(ops)) == 1  # the defaults: 512 MiB and 256 files


def test_commit_titles_are_used_trimmed() -> None:
    # The Hub stores titles trimmed; the lost-answer check finds a commit by its title.
    assert (
        commit_message("processors", {"processors": "  Nightly {name} "}, "conversations")
        == "Nightly conversations"
    )
    assert commit_message("card", {}) == "Upload dataset card"


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        (
            {"mettadata": "Nightly metadata"},
            "title for 'mettadata', which is not a stage; the stages are card, data",
        ),
        ({"data": "  "}, r"commit_messages\['data'\] = '  ': a commit title is one non-empty line"),
        ({"card": "Card\n\nwith a body"}, "one non-empty line .*default: 'Upload dataset card'"),
        ({"data": "{name}"}, "one non-empty line"),  # only a processor has a name to fill in
    ],
)
def test_commit_messages_are_checked_before_any_request(messages: dict[str, str], fragment: str) -> None:
    with pytest.raises(InvalidParameterError, match=fragment):
        check_push_parameters("alice/ds", "A dataset.", commit_messages=messages)
    check_push_parameters(
        "alice/ds", "A dataset.", commit_messages={"processors": "{name}", "card": "Nightly card"}
    )


def test_stage_table_gives_a_split_stage_its_time_once() -> None:
    """A stage of several commits shows its time on its first row: the column adds up to the push's time."""
    made = [
        CommitRecord(oid=f"c{i}", url=f"u{i}", message="m", files_added=1, files_deleted=0, bytes_sent=10)
        for i in range(3)
    ]
    data = StageResult(stage="data", seconds=4.2, outcomes=[CommitOutcome(label="data", commits=made)])
    card = StageResult(stage="card", seconds=0.5, outcomes=[CommitOutcome(label="card", files_unchanged=1)])
    skipped = StageResult(stage="images", seconds=0.01, skipped=True)
    rows = [r for stage in (card, data, skipped) for r in stage.rows()]
    assert [r["commit"] for r in rows] == ["unchanged (no commit)", "c0", "c1", "c2", "skipped (nothing to push)"]
    assert [r["seconds"] for r in rows] == [0.5, 4.2, "", "", 0.01]


def test_the_cards_content_key_covers_the_templates_it_includes(tmp_path: Path) -> None:
    """A cached card is not served after an included template changed (it hashed the top template only)."""
    from tasks.stage_cache import content_keys

    folder = scan_dataset_folder(make_dataset_folder(tmp_path / "ds", processor_dir=None, processor_file=None))
    (tmp_path / "tpl").mkdir()
    template, part = tmp_path / "tpl" / "card.md.j2", tmp_path / "tpl" / "part.j2"
    template.write_text('{% include "part.j2" %}\n{% include "dataset_card.md.j2" %}')  # own, then shipped
    part.write_text("VERSION-ONE")
    card = CardOptions(repo_id="alice/ds", description="A dataset.", template=template)
    before = content_keys(folder, card)["card"]
    assert content_keys(folder, card)["card"] == before  # same templates: same key (the cache works)
    part.write_text("VERSION-TWO")
    assert content_keys(folder, card)["card"] != before
    template.write_text("{% include pretty_name %}")  # a name known only when rendering: never cached
    assert content_keys(folder, card)["card"] != content_keys(folder, card)["card"]
