"""Calculated leak rates (issue 18 item 4).

- `leak.method` (existing column) gains two values: "orifice" (rate from hole diameter,
  pressure, discharge coefficient and temperature) and "detector" (from a dB reading at a
  distance and pressure through the organization's detector table).
  `leak.rate_inputs`: the inputs of such a calculation as JSON text ("" for a measured or
  estimated rate), so the figure can be explained and recomputed.
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

    db.execute_sql("ALTER TABLE leak ADD COLUMN rate_inputs TEXT NOT NULL DEFAULT ''")
    db.create_tables([DetectorRateRow])
