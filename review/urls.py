from django.urls import path

from review import actions, views

app_name = "review"

urlpatterns = [
    path("conversations/", views.conversations, name="conversations"),
    path("conversations/<int:pk>/", views.conversation, name="conversation"),
    path(
        "conversations/<int:pk>/messages/",
        views.conversation_messages,
        name="conversation_messages",
    ),
    path("conversations/<int:pk>/tags/", actions.tag_conversation, name="tag_conversation"),
    path("conversations/<int:pk>/flag/", actions.flag_conversation, name="flag_conversation"),
    path("messages/<int:pk>/media/", views.media, name="media"),
    path("messages/<int:pk>/tags/", actions.tag_message, name="tag_message"),
    path("messages/<int:pk>/flag/", actions.flag_message, name="flag_message"),
    path("search/", views.search_page, name="search"),
    path("search/saved/", views.save_search, name="save_search"),
    path("search/saved/<int:pk>/delete/", views.delete_saved_search, name="delete_saved_search"),
    path("review/", actions.queue, name="queue"),
    path("review/bulk/", actions.bulk_decide, name="bulk_decide"),
    path("review/<int:pk>/", actions.flag_detail, name="flag"),
    path("review/<int:pk>/claim/", actions.claim, name="claim"),
    path("review/<int:pk>/decide/", actions.decide, name="decide"),
    path("review/<int:pk>/comment/", actions.comment, name="comment"),
    path("access-log/", actions.access_log, name="access_log"),
    path("leave/", views.leave, name="leave"),
]
