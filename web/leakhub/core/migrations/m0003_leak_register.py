"""Leak register: locations (site → building → area), energy settings by validity date,
surveys with their scope, leaks with their status history."""
import peewee as pw


def up(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Organization(Base):
        class Meta:
            table_name = "organization"

    class User(Base):
        class Meta:
            table_name = "user"

    class Location(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        parent = pw.ForeignKeyField("self", null=True, on_delete="RESTRICT")
        kind = pw.CharField(max_length=16)
        code = pw.CharField(max_length=40)
        name = pw.CharField(max_length=200)
        path = pw.CharField(max_length=255, default="")
        depth = pw.SmallIntegerField(default=0)
        notes = pw.TextField(default="")
        version = pw.IntegerField(default=1)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

        class Meta:
            indexes = ((("organization", "path"), False),
                       (("organization", "parent"), False),
                       (("organization", "code"), False))

    class EnergySettings(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        site = pw.ForeignKeyField(Location, null=True, on_delete="CASCADE")
        valid_from = pw.DateField()
        price_per_kwh = pw.DecimalField(max_digits=12, decimal_places=5, null=True)
        currency = pw.CharField(max_length=3, null=True)
        specific_power = pw.DecimalField(max_digits=8, decimal_places=3, null=True)
        operating_hours = pw.IntegerField(null=True)
        co2_factor = pw.DecimalField(max_digits=8, decimal_places=4, null=True)
        price_per_m3 = pw.DecimalField(max_digits=12, decimal_places=5, null=True)
        control_factor = pw.DecimalField(max_digits=5, decimal_places=3, null=True)
        note = pw.CharField(max_length=200, default="")
        version = pw.IntegerField(default=1)
        created_at = pw.DateTimeField()

        class Meta:
            indexes = ((("organization", "site", "valid_from"), False),)

    class Survey(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        name = pw.CharField(max_length=200)
        period_start = pw.DateField()
        period_end = pw.DateField(null=True)
        auditor_user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        auditor_company = pw.CharField(max_length=200, default="")
        device = pw.CharField(max_length=200, default="")
        status = pw.CharField(max_length=16, default="planned")
        coverage_percent = pw.SmallIntegerField(null=True)
        notes = pw.TextField(default="")
        version = pw.IntegerField(default=1)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

        class Meta:
            indexes = ((("organization", "period_start"), False),
                       (("organization", "status"), False))

    class SurveyScope(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        survey = pw.ForeignKeyField(Survey, on_delete="CASCADE")
        location = pw.ForeignKeyField(Location, on_delete="CASCADE")

        class Meta:
            indexes = ((("survey", "location"), True),
                       (("organization", "location"), False))

    class Leak(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        tag = pw.CharField(max_length=32)
        tag_number = pw.BigIntegerField(null=True)
        location = pw.ForeignKeyField(Location, on_delete="RESTRICT")
        survey = pw.ForeignKeyField(Survey, null=True, on_delete="SET NULL")
        found_at = pw.DateTimeField()
        found_by_user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        found_by = pw.CharField(max_length=200, default="")
        device_serial = pw.CharField(max_length=64, default="")
        method = pw.CharField(max_length=16, default="device")
        estimate_class = pw.CharField(max_length=16, null=True)
        rate_lpm = pw.DecimalField(max_digits=12, decimal_places=3)
        rate_low_lpm = pw.DecimalField(max_digits=12, decimal_places=3, null=True)
        rate_high_lpm = pw.DecimalField(max_digits=12, decimal_places=3, null=True)
        pressure_bar = pw.DecimalField(max_digits=6, decimal_places=2, null=True)
        gas = pw.CharField(max_length=32, default="air")
        component = pw.CharField(max_length=24, default="other")
        priority = pw.SmallIntegerField(default=2)
        description = pw.TextField(default="")
        recommended_action = pw.TextField(default="")
        spare_part = pw.CharField(max_length=200, default="")
        status = pw.CharField(max_length=16, default="open")
        due_date = pw.DateField(null=True)
        repaired_at = pw.DateField(null=True)
        repaired_by = pw.CharField(max_length=200, default="")
        repair_cost = pw.DecimalField(max_digits=12, decimal_places=2, null=True)
        verified_at = pw.DateField(null=True)
        verification_note = pw.TextField(default="")
        previous_leak = pw.ForeignKeyField("self", null=True, on_delete="SET NULL")
        source = pw.CharField(max_length=16, default="manual")
        version = pw.IntegerField(default=1)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

        class Meta:
            indexes = ((("organization", "tag"), True),
                       (("organization", "tag_number"), False),
                       (("organization", "status"), False),
                       (("organization", "location"), False),
                       (("organization", "survey"), False),
                       (("organization", "found_at"), False),
                       (("organization", "priority"), False),
                       (("organization", "component"), False))

    class LeakStatusChange(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        leak = pw.ForeignKeyField(Leak, on_delete="CASCADE")
        at = pw.DateTimeField()
        from_status = pw.CharField(max_length=16, null=True)
        to_status = pw.CharField(max_length=16)
        actor_label = pw.CharField(max_length=254, default="")
        user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        note = pw.TextField(default="")

        class Meta:
            indexes = ((("organization", "leak", "at"), False),)

    db.create_tables([Location, EnergySettings, Survey, SurveyScope, Leak, LeakStatusChange])
