from django.db import migrations, models


class Migration(migrations.Migration):
    """EpochMetric keeps all of an EpochReport: the run's folds and models and the epoch count."""

    dependencies = [
        ('training', '0003_epoch_member'),
    ]

    operations = [
        migrations.AddField(
            model_name='epochmetric',
            name='folds',
            field=models.PositiveSmallIntegerField(default=1),
        ),
        migrations.AddField(
            model_name='epochmetric',
            name='members',
            field=models.PositiveSmallIntegerField(default=1),
        ),
        migrations.AddField(
            model_name='epochmetric',
            name='epochs',
            field=models.PositiveIntegerField(default=0, help_text='0: stored before the count was kept.'),
        ),
    ]
