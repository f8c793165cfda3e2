"""Floor plans with pins and detector (import mapping) presets (issue 18 items 5 and 6).

- `floor_plan`: the plan image of a location (one current plan per location); the bytes live
  encrypted in the uploads storage under a content-hash key like photos. `version` grows by
  one each time the plan is replaced, so pins can be tied to the plan they were placed on.
- `leak.plan_x`, `leak.plan_y`: the pin as fractions 0..1 of the plan's width and height
  (NULL: not placed); `leak.plan_version`: the plan version the pin was placed on.
- `import_preset`: an organization's saved column mapping for imports (name unique per
  organization), as JSON text {field: column header}.
"""
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
        class Meta:
            table_name = "location"

    class FloorPlan(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        location = pw.ForeignKeyField(Location, on_delete="CASCADE", unique=True)
        version = pw.IntegerField(default=1)
        sha256 = pw.CharField(max_length=64)
        content_type = pw.CharField(max_length=32)
        size = pw.IntegerField()
        width = pw.IntegerField()
        height = pw.IntegerField()
        original_filename = pw.CharField(max_length=200, default="")
        uploaded_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        uploaded_at = pw.DateTimeField()

        class Meta:
            table_name = "floor_plan"
            indexes = ((("organization", "sha256"), False),)

    class ImportPreset(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        name = pw.CharField(max_length=80)
        mapping = pw.TextField()
        created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "import_preset"
            indexes = ((("organization", "name"), True),)

    db.create_tables([FloorPlan, ImportPreset])
    db.execute_sql("ALTER TABLE leak ADD COLUMN plan_x REAL")
    db.execute_sql("ALTER TABLE leak ADD COLUMN plan_y REAL")
    db.execute_sql("ALTER TABLE leak ADD COLUMN plan_version INTEGER")
