"""Export and import carry the follow-up fields (assignee by e-mail, maintenance order number,
rate after repair, due date) and a calculated rate's method and inputs (issue 18 gaps): the
assignee rule of the form (a user who may edit that leak, else a row error naming the column),
all-or-nothing, and a round trip export → import into another organization keeps them."""
import csv
import datetime as dt
import io
import itertools
import json
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from leakhub.authz import Actor
from leakhub.authz.grants import add_grant
from leakhub.exports import service as exports
from leakhub.identity.models import User
from leakhub.imports import service as imports
from leakhub.leaks import calc
from leakhub.leaks import service as leaks
from leakhub.leaks.models import Leak
from leakhub.orgs.models import Organization

from support.reporting_data import make_tree, new_leak

TABLE = [calc.DetectorPoint(D(p), D(m), D(db), D(r)) for p, m, db, r in (
    (4, 1, 10, 2), (4, 1, 50, 40), (4, 3, 10, 6), (4, 3, 50, 120),
    (6, 1, 10, 3), (6, 1, 50, 60), (6, 3, 10, 9), (6, 3, 50, 180))]

HEAD = ("Tag number,Location path,Found at,Leak rate l/min,Assignee e-mail,"
        "Maintenance order number,Due date,Rate after repair l/min,Status\r\n")


def _export(app, actor, fmt="csv", lang="en"):
    with app.test_request_context(headers={"Accept-Language": lang}):
        out, n = exports.export(actor, leaks.parse_filter({}), fmt=fmt,
                                tzname=actor.organization.timezone)
        return out.read(), n


def _rows_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def _import(actor, data, name="leaks.csv", **kw):
    return imports.run_import(actor, data, name, **kw)


def _twin(user, org):
    """A user of `org` with the same e-mail address and role."""
    return User.create(organization=org, sub=f"twin-{user.id}-{org.slug}", email=user.email,
                       name=user.name, role=user.role)


def _fill(actor, tree, assignee):
    leaks.save_detector_table(actor, TABLE)
    a = new_leak(actor, tree["area"], tag="1", assignee=assignee.id, order_number="IH-4711",
                 due_date=dt.date(2024, 4, 1))
    b = new_leak(actor, tree["area"], tag="2", method="orifice", pressure_bar=D(6),
                 rate_inputs={"orifice_diameter_mm": D("1.5"),
                              "discharge_coefficient": D("0.8")})
    c = new_leak(actor, tree["site2"], tag="3", method="detector", pressure_bar=D(5),
                 rate_inputs={"detector_db": D(30), "detector_distance_m": D(2)})
    for step in ("repair_planned", "repaired", "verified"):
        leaks.change_status(actor, Leak.get_by_id(a.id), step, after_lpm=D("1.25")
                            if step == "verified" else None)
    return a, b, c


def test_export_writes_the_new_columns(app, actor, make_user):
    tree = make_tree(actor)
    fixer = make_user("editor")
    _fill(actor, tree, fixer)
    data, n = _export(app, actor)
    assert n == 3
    by_tag = {r["Tag number"]: r for r in _rows_csv(data)}
    a, b, c = by_tag["1"], by_tag["2"], by_tag["3"]
    assert (a["Assignee e-mail"], a["Maintenance order number"], a["Due date"],
            D(a["Rate after repair l/min"])) == (fixer.email, "IH-4711", "2024-04-01", D("1.25"))
    assert (D(b["Hole diameter mm"]), D(b["Discharge coefficient Cd"]),
            D(b["Air temperature °C"])) == (D("1.5"), D("0.8"), D(20))
    assert b["Detector reading dB"] == "" and a["Hole diameter mm"] == ""
    assert (D(c["Detector reading dB"]), D(c["Distance of the reading m"])) == (D(30), D(2))
    xlsx, _n = _export(app, actor, "xlsx")
    ws = load_workbook(io.BytesIO(xlsx)).active
    rows = list(ws.iter_rows(values_only=True))
    rec = {r[0]: dict(zip(rows[0], r, strict=False)) for r in rows[1:]}
    assert rec["1"]["Rate after repair l/min"] == 1.25
    assert rec["2"]["Hole diameter mm"] == 1.5


def test_an_external_exporter_sees_no_other_users_address(app, actor, make_user):
    """The users list is closed to an external auditor; the export must not open it."""
    tree = make_tree(actor)
    fixer = make_user("editor")
    auditor = make_user("external")
    add_grant(actor, auditor, location_id=tree["site"].id, level="edit")
    new_leak(actor, tree["area"], tag="1", assignee=fixer.id)
    new_leak(actor, tree["area"], tag="2", assignee=auditor.id)
    ext = Actor(organization=auditor.organization, kind="user", user=auditor)
    data, n = _export(app, ext)
    by_tag = {r["Tag number"]: r for r in _rows_csv(data)}
    assert n == 2 and fixer.email not in data.decode("utf-8-sig")
    assert (by_tag["1"]["Assignee e-mail"], by_tag["2"]["Assignee e-mail"]) == ("",
                                                                                auditor.email)
    admin_view = {r["Tag number"]: r for r in _rows_csv(_export(app, actor)[0])}
    assert admin_view["1"]["Assignee e-mail"] == fixer.email


def _round_trip(app, actor, other_org, make_actor, fmt, lang="en"):
    data, _n = _export(app, actor, fmt, lang)
    target = make_actor("admin", organization=other_org)
    for u in User.select().where((User.organization == actor.organization.id)
                                 & (User.role == "editor")):
        _twin(u, other_org)
    leaks.save_detector_table(target, TABLE)
    with app.test_request_context(headers={"Accept-Language": lang}):
        result = _import(target, data, f"leaks.{fmt}",
                         options=imports.Options(create_locations=True))
    assert result.ok and result.committed, [str(e) for e in result.errors]
    return target


def _same(src: Leak, dst: Leak):
    for f in ("order_number", "after_lpm", "due_date", "method", "rate_lpm", "pressure_bar",
              "status"):
        assert getattr(src, f) == getattr(dst, f), f
    assert json.loads(src.rate_inputs or "{}") == json.loads(dst.rate_inputs or "{}")
    assert (src.assignee.email.lower() if src.assignee_id else None) == (
        dst.assignee.email.lower() if dst.assignee_id else None)
    if dst.assignee_id:
        assert dst.assignee.organization_id == dst.organization_id


def test_round_trip_into_another_organization_keeps_them(app, actor, other_org, make_user,
                                                         make_actor):
    tree = make_tree(actor)
    _fill(actor, tree, make_user("editor"))
    for fmt, lang in (("csv", "en"), ("xlsx", "de")):
        target = _round_trip(app, actor, other_org, make_actor, fmt, lang)
        got = {lk.tag: lk for lk in Leak.select().where(Leak.organization == other_org.id)}
        for src in Leak.select().where(Leak.organization == actor.organization.id):
            _same(src, got[src.tag])
        # Re-importing the same export is idempotent (nothing changed, no conflicts).
        data, _n = _export(app, actor, fmt, lang)
        with app.test_request_context(headers={"Accept-Language": lang}):
            again = _import(target, data, f"leaks.{fmt}")
        assert again.ok and again.unchanged == 3 and again.new == 0, [str(e) for e in
                                                                       again.errors]
        Leak.delete().where(Leak.organization == other_org.id).execute()
        User.delete().where(User.organization == other_org.id).execute()


def test_unknown_assignee_email_is_a_row_error_naming_the_column(actor):
    make_tree(actor)
    body = HEAD + "7,BER/H1/A1,2024-03-01 09:00,5,nobody@nowhere.test,,,,open\r\n"
    result = _import(actor, body.encode())
    assert not result.committed and Leak.select().count() == 0
    assert [(e.row, e.column) for e in result.errors] == [(2, "Assignee e-mail")]
    assert "nobody@nowhere.test" in result.errors[0].message


def test_assignee_must_be_allowed_to_edit_that_leak(actor, org, make_user):
    """The form's rule: a viewer is refused; an editor with a grant on MUC only is refused
    for a leak at BER (row error, nothing written) and accepted at MUC."""
    org.security_mode = 2
    org.save()
    tree = make_tree(actor)
    viewer = make_user("viewer")
    limited = make_user("editor")
    add_grant(actor, limited, location_id=tree["site2"].id, level="edit")
    body = (HEAD + f"7,BER/H1/A1,2024-03-01 09:00,5,{viewer.email},,,,open\r\n"
            f"8,BER/H1/A1,2024-03-01 09:00,5,{limited.email.upper()},,,,open\r\n"
            f"9,MUC,2024-03-01 09:00,5,{limited.email},IH-1,2024-05-01,,open\r\n")
    result = _import(actor, body.encode())
    assert not result.committed and Leak.select().count() == 0
    assert [(e.row, e.column) for e in result.errors] == [(2, "Assignee e-mail"),
                                                          (3, "Assignee e-mail")]
    ok = HEAD + f"9,MUC,2024-03-01 09:00,5,{limited.email},IH-1,2024-05-01,,open\r\n"
    result = _import(actor, ok.encode())
    assert result.committed, [str(e) for e in result.errors]
    leak = Leak.get(Leak.tag == "9")
    assert (leak.assignee_id, leak.order_number, leak.due_date) == (
        limited.id, "IH-1", dt.date(2024, 5, 1))


def test_assignee_checked_on_update_too(actor, org, make_user):
    """An update that moves the assignee to someone who may not edit the leak is refused
    inside the transaction: a row error, nothing changed."""
    org.security_mode = 2
    org.save()
    tree = make_tree(actor)
    limited = make_user("editor")
    add_grant(actor, limited, location_id=tree["site2"].id, level="edit")
    leak = new_leak(actor, tree["site2"], tag="9", found_at=dt.datetime(2024, 3, 1, 8),
                    rate_lpm=D(5), assignee=limited.id)
    # The file moves the leak to BER while keeping the MUC-only assignee.
    body = HEAD + f"9,BER/H1/A1,2024-03-01 09:00,5,{limited.email},,,,open\r\n"
    result = _import(actor, body.encode(), options=imports.Options(update_existing=True))
    assert not result.committed
    assert [(e.row, e.column) for e in result.errors] == [(2, "Assignee e-mail")]
    assert Leak.get_by_id(leak.id).location_id == tree["site2"].id


def test_calculated_rate_inputs_are_validated_per_row(actor):
    make_tree(actor)
    head = "Tag number,Location path,Found at,Method,Pressure bar,Hole diameter mm\r\n"
    body = head + "5,BER,2024-03-01 09:00,orifice,6,\r\n6,BER,2024-03-01 09:00,orifice,6,1\r\n"
    result = _import(actor, body.encode())
    assert not result.committed
    assert [(e.row, e.column) for e in result.errors] == [(2, "Hole diameter mm")]


_EXAMPLES = itertools.count()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                     max_size=64).map(str.strip),
       after=st.none() | st.decimals(min_value=0, max_value=100000, places=3),
       diameter=st.decimals(min_value=D("0.1"), max_value=20, places=3),
       cd=st.none() | st.decimals(min_value=D("0.05"), max_value=1, places=3),
       due=st.none() | st.dates(dt.date(2000, 1, 1), dt.date(2100, 1, 1)))
def test_round_trip_property(app, order, after, diameter, cd, due):
    """Whatever the values, export → import into another organization keeps them."""
    n = next(_EXAMPLES)
    org = Organization.create(slug=f"pa{n}", name=f"A {n}", oidc_client_secret="x",
                              timezone="Europe/Berlin")
    other = Organization.create(slug=f"pb{n}", name=f"B {n}", oidc_client_secret="y")
    src_user = User.create(organization=org, sub=f"pa-{n}", email=f"a{n}@x.test", role="admin")
    src = Actor(organization=org, kind="user", user=src_user)
    tree = make_tree(src)
    inputs = {"orifice_diameter_mm": diameter}
    if cd is not None:
        inputs["discharge_coefficient"] = cd
    new_leak(src, tree["area"], tag="1", method="orifice", pressure_bar=D(6),
             rate_inputs=inputs, order_number=order, after_lpm=after, due_date=due,
             assignee=src_user.id)
    data, _n = _export(app, src)
    dst_user = User.create(organization=other, sub=f"pb-{n}", email=f"A{n}@x.test",
                           role="admin")
    dst = Actor(organization=other, kind="user", user=dst_user)
    with app.test_request_context():
        result = _import(dst, data, options=imports.Options(create_locations=True))
    assert result.committed, [str(e) for e in result.errors]
    _same(Leak.get(Leak.organization == org.id), Leak.get(Leak.organization == other.id))


# ---------------------------------------------------------------- deferral reason

DEFER_HEAD = "Tag number,Location path,Found at,Leak rate l/min,Status"


def test_a_deferred_row_needs_a_reason_like_the_form(actor):
    make_tree(actor)
    no_column = DEFER_HEAD + "\r\n7,BER,2024-03-01 09:00,5,deferred\r\n"
    result = _import(actor, no_column.encode())
    assert not result.committed and Leak.select().count() == 0
    assert [(e.row, e.column) for e in result.errors] == [(2, "Status")]
    assert "reason" in result.errors[0].message
    empty = (DEFER_HEAD + ",Deferral reason\r\n7,BER,2024-03-01 09:00,5,deferred,\r\n"
             "8,BER,2024-03-01 09:00,5,open,\r\n")
    result = _import(actor, empty.encode())
    assert [(e.row, e.column) for e in result.errors] == [(2, "Deferral reason")]
    assert Leak.select().count() == 0
    given_ = (DEFER_HEAD + ",Deferral reason\r\n"
              "7,BER,2024-03-01 09:00,5,zurückgestellt,Stillstand im August\r\n")
    result = _import(actor, given_.encode())
    assert result.committed, [str(e) for e in result.errors]
    leak = Leak.get(Leak.tag == "7")
    assert leak.status == "deferred"
    assert "Stillstand im August" in leaks.history(actor, leak)[-1].note


def test_deferring_an_existing_leak_by_import_needs_the_reason(actor):
    tree = make_tree(actor)
    leak = new_leak(actor, tree["site"], tag="7", rate_lpm=D(5))
    opts = imports.Options(update_existing=True)
    body = DEFER_HEAD + "\r\n7,BER,2024-03-01 09:00,5,deferred\r\n"
    result = _import(actor, body.encode(), options=opts)
    assert [(e.row, e.column) for e in result.errors] == [(2, "Status")]
    assert Leak.get_by_id(leak.id).status == "open"
    body = DEFER_HEAD + ",Deferral reason\r\n7,BER,2024-03-01 09:00,5,deferred,Ersatzteil fehlt\r\n"
    result = _import(actor, body.encode(), options=opts)
    assert result.committed, [str(e) for e in result.errors]
    assert Leak.get_by_id(leak.id).status == "deferred"
    assert leaks.history(actor, Leak.get_by_id(leak.id))[-1].note.endswith("Ersatzteil fehlt")


def test_deferred_leaks_round_trip_with_their_reason(app, actor, other_org, make_actor):
    tree = make_tree(actor)
    leak = new_leak(actor, tree["area"], tag="5", rate_lpm=D(4))
    leaks.change_status(actor, leak, "deferred", note="Produktion läuft; =Stillstand")
    new_leak(actor, tree["area"], tag="6", rate_lpm=D(2))
    data, _n = _export(app, actor)
    rows = {r["Tag number"]: r for r in _rows_csv(data)}
    assert rows["5"]["Deferral reason"] == "Produktion läuft; =Stillstand"
    assert rows["6"]["Deferral reason"] == ""
    target = make_actor("admin", organization=other_org)
    with app.test_request_context():
        result = _import(target, data, options=imports.Options(create_locations=True))
    assert result.committed, [str(e) for e in result.errors]
    copy = Leak.get((Leak.organization == other_org.id) & (Leak.tag == "5"))
    assert copy.status == "deferred"
    assert leaks.history(target, copy)[-1].note.endswith("Produktion läuft; =Stillstand")
