"""Which values of a config's rows are image paths, and which of them the repo lacks (pure: no Hub, no engine)."""

from __future__ import annotations

import pyarrow as pa

from tasks.image_references import ImageReferences

REPO = frozenset({"images/avatar/a.png", "images/avatar/b.png", "images/pics/c.jpg"})


def _references(listed: list[int]) -> ImageReferences:
    def repo_images() -> frozenset[str]:
        listed.append(1)
        return REPO

    return ImageReferences(repo_images)


def test_image_columns_are_checked_value_by_value_and_text_is_not() -> None:
    listed: list[int] = []
    refs = _references(listed)
    refs.add(
        pa.record_batch(
            {
                "avatar": pa.array([None, "", "images/avatar/a.png", "images/avatar/x.png"]),
                "pics": pa.array([["images/pics/c.jpg"], ["images/pics/y.jpg", "images/avatar/b.png"], None, []]),
                "text": pa.array(["hello", "images/avatar/zzz.png", None, "x"]),  # first value is text
                "number": pa.array([1, 2, 3, 4]),
            }
        )
    )
    refs.add(pa.record_batch({"avatar": pa.array(["images/avatar/b.png"]), "text": pa.array(["images/q.png"])}))
    assert refs.columns == ["avatar", "pics"]
    assert (refs.referenced, refs.missing) == (6, 2)
    assert refs.examples == ["images/avatar/x.png", "images/pics/y.jpg"]
    assert listed == [1]  # the repo's images are listed once


def test_a_column_is_decided_at_its_first_value_across_batches() -> None:
    listed: list[int] = []
    refs = _references(listed)
    refs.add(pa.record_batch({"avatar": pa.array([None, ""], pa.large_string())}))
    assert (refs.columns, listed) == ([], [])  # no value yet: undecided, nothing listed
    refs.add(pa.record_batch({"avatar": pa.array(["images/avatar/gone.png"], pa.large_string())}))
    assert (refs.columns, refs.referenced, refs.missing, refs.examples) == (
        ["avatar"],
        1,
        1,
        ["images/avatar/gone.png"],
    )


def test_a_config_without_image_paths_never_lists_the_repo() -> None:
    listed: list[int] = []
    refs = _references(listed)
    refs.add(pa.record_batch({"greeting": pa.array(["hi", "images are nice"]), "n": pa.array([1, 2])}))
    assert (refs.columns, refs.referenced, listed) == ([], 0, [])


def test_missing_examples_are_bounded_and_the_count_is_not() -> None:
    refs = _references([])
    refs.add(pa.record_batch({"avatar": pa.array([f"images/avatar/{i}.png" for i in range(50)])}))
    assert (refs.missing, len(refs.examples)) == (50, 5)
