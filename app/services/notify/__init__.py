"""Notifications: who is told what, and the outbox that carries it to email and webhooks.

``prefs`` decides the outside (channel, address) routes of a user for an event and holds the
county's channel settings; ``outbox`` queues a message once per key and delivers due ones
with a lease, backoff and quiet hours; ``channels`` speaks SMTP and the robot webhooks.
In-app notices (the bell) and the events that raise them live beside these modules.
"""
