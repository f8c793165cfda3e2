"""Backups: one row per archive in the backup directory, and the download log."""
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

    class BackupRecord(Base):
        file_name = pw.CharField(max_length=200, unique=True)
        created_at = pw.DateTimeField(index=True)
        kind = pw.CharField(max_length=16)
        size = pw.BigIntegerField(default=0)
        sha256 = pw.CharField(max_length=64, default="")
        manifest = pw.TextField(default="{}")
        verified_at = pw.DateTimeField(null=True)
        verify_status = pw.CharField(max_length=16, null=True)
        verify_message = pw.TextField(default="")
        copied = pw.BooleanField(default=False)

        class Meta:
            table_name = "backup_record"

    class BackupDownload(Base):
        backup = pw.ForeignKeyField(BackupRecord, null=True, on_delete="SET NULL")
        file_name = pw.CharField(max_length=200)
        organization = pw.ForeignKeyField(Organization, null=True, on_delete="SET NULL")
        user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        user_label = pw.CharField(max_length=254, default="")
        ip = pw.CharField(max_length=45, null=True)
        user_agent = pw.CharField(max_length=300, default="")
        at = pw.DateTimeField(index=True)

        class Meta:
            table_name = "backup_download"

    db.create_tables([BackupRecord, BackupDownload])
