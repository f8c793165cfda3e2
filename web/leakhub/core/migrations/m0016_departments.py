"""Departments (issue 15 part 2): groups of users per organization, their members, and
grants to groups.

- `user_group`: a department of an organization (unique name per organization); `kc_group`
  optionally names a Keycloak group path ("/Maintenance", from LDAP through the realm's
  group mapper): at sign-in the user's membership is synchronised from the token's `groups`.
- `user_group_member`: user × group; `source` "manual" (added by an administrator) or
  "directory" (from the `groups` claim at sign-in; removed there when the claim lacks it).
- `grant.user_id` becomes nullable and `grant.group_id` is added: a grant goes to a user or
  to a group (exactly one; the service checks it). Level "admin" (department administrator
  on a location subtree) is a new value of the existing `level` column.
"""
import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate


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

    class UserGroup(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        name = pw.CharField(max_length=100)
        kc_group = pw.CharField(max_length=255, default="")
        created_at = pw.DateTimeField()
        version = pw.IntegerField(default=1)

        class Meta:
            table_name = "user_group"
            indexes = ((("organization", "name"), True),)

    class UserGroupMember(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        group = pw.ForeignKeyField(UserGroup, on_delete="CASCADE")
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        source = pw.CharField(max_length=16, default="manual")
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "user_group_member"
            indexes = ((("group", "user"), True), (("organization", "user"), False))

    db.create_tables([UserGroup, UserGroupMember])
    migrator = SchemaMigrator.from_database(getattr(db, "obj", None) or db)
    group = pw.ForeignKeyField(UserGroup, null=True, on_delete="CASCADE", field=UserGroup.id)
    migrate(
        migrator.drop_not_null("grant", "user_id"),
        migrator.add_column("grant", "group_id", group),
        migrator.add_index("grant", ("organization_id", "group_id"), False),
    )
