defmodule ObjectStoreX.Backends.WebDAVTest do
  use ExUnit.Case, async: true

  @moduletag backend: :webdav

  use ObjectStoreX.BehaviourSuite, backend: :webdav
end
