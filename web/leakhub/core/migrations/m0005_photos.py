"""Leak photos: metadata rows; the bytes live in the uploads storage under content-hash keys."""
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

    class Leak(Base):
        class Meta:
            table_name = "leak"

    class Photo(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        leak = pw.ForeignKeyField(Leak, on_delete="CASCADE")
        sha256 = pw.CharField(max_length=64)
        thumb_sha256 = pw.CharField(max_length=64)
        content_type = pw.CharField(max_length=32)
        size = pw.IntegerField()
        width = pw.IntegerField()
        height = pw.IntegerField()
        original_filename = pw.CharField(max_length=200, default="")
        uploaded_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        uploaded_at = pw.DateTimeField()

        class Meta:
            indexes = ((("organization", "leak"), False),
                       (("organization", "sha256"), False),
                       (("organization", "thumb_sha256"), False))

    db.create_tables([Photo])
