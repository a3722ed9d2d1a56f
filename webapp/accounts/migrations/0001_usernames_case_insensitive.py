"""Usernames are unique whatever their case (`Rev` cannot join beside `rev`): a unique index on the upper-cased
name, which PostgreSQL and SQLite both build. Sign-in and member lookups compare names the same way
(webapp.accounts.backends)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunSQL(
            "CREATE UNIQUE INDEX accounts_username_upper_uniq ON auth_user (UPPER(username))",
            reverse_sql="DROP INDEX accounts_username_upper_uniq",
        ),
    ]
