"""Each permission the studio and the admin check, named once (the admin's model permissions)."""

ADD_TOPIC = "topics.add_topic"
CHANGE_TOPIC = "topics.change_topic"
DELETE_TOPIC = "topics.delete_topic"
VIEW_VIDEOS = "topics.view_contentitem"
GENERATE = "topics.add_contentitem"
REGENERATE = "topics.regenerate_contentitem"
CHANGE_VIDEO = "topics.change_contentitem"  # rename a video, move it within its topic
DELETE_VIDEO = "topics.delete_contentitem"
VIEW_JOBS = "avatars.view_videojob"
