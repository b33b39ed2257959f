"""Tier variants of a template win when the owner made one."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.notes.template_choice import template_for, template_names


def test_a_tier_variant_wins_when_it_exists(tmp_path: Path) -> None:
    (tmp_path / "birthday.j2").write_text("plain", encoding="utf-8")
    (tmp_path / "birthday.vip.j2").write_text("vip", encoding="utf-8")
    assert template_for(tmp_path, "birthday", "vip") == tmp_path / "birthday.vip.j2"
    assert template_for(tmp_path, "birthday", "regular") == tmp_path / "birthday.j2"
    assert template_for(tmp_path, "birthday", None) == tmp_path / "birthday.j2"


def test_without_any_file_the_plain_name_is_what_to_create(tmp_path: Path) -> None:
    assert template_for(tmp_path, "check_in", "vip") == tmp_path / "check_in.j2"


def test_names_are_tried_variant_first() -> None:
    assert template_names("order_thanks", "new") == ["order_thanks.new.j2", "order_thanks.j2"]


def test_a_tier_cannot_name_another_file() -> None:
    with pytest.raises(ValueError, match="unknown tier"):
        template_names("birthday", "../../etc/passwd")
