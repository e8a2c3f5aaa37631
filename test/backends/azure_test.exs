defmodule ObjectStoreX.Backends.AzureTest do
  use ExUnit.Case, async: true

  @moduletag backend: :azure

  use ObjectStoreX.BehaviourSuite, backend: :azure

  # `use_emulator: true` takes Azurite's address from AZURITE_BLOB_STORAGE_URL (default
  # http://127.0.0.1:10000), not from :endpoint, and the BEAM cannot change that variable for
  # the NIF. So this round trip runs only when the configured Azurite is where emulator mode
  # looks; building such a store is covered in test/objectstorex/store_test.exs.
  emulator_url = System.get_env("AZURITE_BLOB_STORAGE_URL") || "http://127.0.0.1:10000"
  endpoint = System.get_env("OBJECTSTOREX_TEST_AZURE_ENDPOINT") || ""

  unless String.trim_trailing(endpoint, "/") ==
           String.trim_trailing(emulator_url, "/") <> "/devstoreaccount1" do
    @tag skip:
           "Azurite is at #{inspect(endpoint)}, emulator mode looks at #{inspect(emulator_url)}"
  end

  test "a use_emulator: true store reaches Azurite with the well-known key" do
    container = System.fetch_env!("OBJECTSTOREX_TEST_AZURE_CONTAINER")
    prefix = ObjectStoreX.TestBackends.unique_prefix("emu")

    assert {:ok, %ObjectStoreX.Store{backend: :azure} = store} =
             ObjectStoreX.new(:azure,
               account: "devstoreaccount1",
               container: container,
               use_emulator: true,
               allow_http: true,
               retry: ObjectStoreX.TestBackends.retry(),
               prefix: prefix
             )

    on_exit(fn -> ObjectStoreX.TestBackends.cleanup(store) end)
    assert :ok = ObjectStoreX.put(store, "emu.txt", "via emulator mode")

    assert {:ok, "via emulator mode", %ObjectStoreX.Meta{size: 17}} =
             ObjectStoreX.get(store, "emu.txt")
  end
end
