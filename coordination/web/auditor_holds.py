"""The auditors' page of protection holds: those due for review first, then
every hold with its reason and its history of set, renewed and lifted
(CONTRACT.md, "Exceptional access"). Reading it is on record."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from coordination.actors import Actor
from coordination.casework import protection_holds
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.web import staff_page


def register(bp: Blueprint) -> None:
    @bp.get("/holds")
    @staff_page(Role.AUDITOR)
    def holds() -> Any:
        from coordination.web.auditor import me

        rt = current()
        actor: Actor = me()
        every = protection_holds.all_holds(request_db(), rt.vault, actor, rt.now())
        due = [h for h in sorted(every, key=lambda h: (h["review_on"], h["id"]))
               if protection_holds.due_for_review(h, rt.now())]
        return render_template("auditor/holds.html", holds=every, due=due,
                               today=rt.now().date().isoformat())
