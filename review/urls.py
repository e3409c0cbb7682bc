from django.urls import path

from review import queue_views, views

app_name = "review"

urlpatterns = [
    path("conversations/", views.conversations, name="conversations"),
    path("conversations/<int:pk>/", views.conversation, name="conversation"),
    path(
        "conversations/<int:pk>/messages/",
        views.conversation_messages,
        name="conversation_messages",
    ),
    path("conversations/<int:pk>/tags/", views.tag_conversation, name="tag_conversation"),
    path("conversations/<int:pk>/flag/", views.flag_conversation, name="flag_conversation"),
    path("messages/<int:pk>/media/", views.media, name="media"),
    path("messages/<int:pk>/tags/", views.tag_message, name="tag_message"),
    path("messages/<int:pk>/flag/", views.flag_message, name="flag_message"),
    path("search/", views.search_page, name="search"),
    path("search/count/", views.search_count, name="search_count"),
    path("search/saved/", views.save_search, name="save_search"),
    path("search/saved/<int:pk>/delete/", views.delete_saved_search, name="delete_saved_search"),
    path("review/", queue_views.queue, name="queue"),
    path("review/bulk/", queue_views.bulk_decide, name="bulk_decide"),
    path("review/<int:pk>/", queue_views.flag_detail, name="flag"),
    path("review/<int:pk>/claim/", queue_views.claim, name="claim"),
    path("review/<int:pk>/decide/", queue_views.decide, name="decide"),
    path("review/<int:pk>/comment/", queue_views.comment, name="comment"),
    path("access-log/", queue_views.access_log, name="access_log"),
    path("leave/", views.leave, name="leave"),
]
