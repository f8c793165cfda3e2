"""Calculated leak rates (issue 18 item 4).

- `leak.rate_method`: how `rate_lpm` came about — "measured" (entered or imported, the
  default for every existing leak), "orifice" (from hole diameter, pressure and discharge
  coefficient) or "detector" (from a dB reading at a distance through the organization's
  detector table). `leak.rate_inputs`: the inputs of the calculation as JSON text, so the
  figure can be explained and recomputed.
- `detector_rate_row`: the organization's own detector table (from its instrument's
  documentation): one row per (pressure, distance, dB) → l/min.
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

    class DetectorRateRow(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        pressure_bar = pw.DecimalField(max_digits=8, decimal_places=3)
        distance_m = pw.DecimalField(max_digits=8, decimal_places=3)
        db_level = pw.DecimalField(max_digits=8, decimal_places=2)
        rate_lpm = pw.DecimalField(max_digits=12, decimal_places=3)

        class Meta:
            table_name = "detector_rate_row"
            indexes = ((("organization", "pressure_bar", "distance_m", "db_level"), True),)

    db.execute_sql("ALTER TABLE leak ADD COLUMN rate_method VARCHAR(16) NOT NULL DEFAULT 'measured'")
    db.execute_sql("ALTER TABLE leak ADD COLUMN rate_inputs TEXT NOT NULL DEFAULT ''")
    db.create_tables([DetectorRateRow])
